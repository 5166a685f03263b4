package folder

import (
	"path/filepath"
	"testing"

	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/remotetest"
)

func TestConformance(t *testing.T) {
	c, err := Open("file://"+filepath.Join(t.TempDir(), "shared"), remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	remotetest.Run(t, c)
}

func TestOpenRefusesOtherURLs(t *testing.T) {
	for _, u := range []string{"file://host/x", "file:", "http://x/y"} {
		if _, err := Open(u, remote.Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}
