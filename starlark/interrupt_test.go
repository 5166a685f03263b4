package starlark

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hepbuild/hepbuild/graph"
)

// cancelOnNotice cancels a context when the loader says it is busy with
// what, so a test interrupts exactly while that code runs.
type cancelOnNotice struct {
	mu     sync.Mutex
	what   string
	cancel context.CancelFunc
	text   strings.Builder
}

func (w *cancelOnNotice) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text.Write(p)
	if strings.Contains(w.text.String(), w.what) {
		w.cancel()
	}
	return len(p), nil
}

// TestInterruptCancelsStarlark: a BUILD file and a rule implementation that
// would loop for minutes stop when the loader's context is cancelled, with
// an error wrapping context.Canceled.
func TestInterruptCancelsStarlark(t *testing.T) {
	const loop = "def spin():\n    n = 0\n    for x in range(1000000000):\n        n += x\n    return n\n"
	for _, c := range []struct {
		name, busy string
		files      map[string]string
		analyse    bool
	}{
		{"BUILD", "loading package //p", map[string]string{"p/BUILD": loop + "N = spin()\n"}, false},
		{"star", "loading //p:defs.star", map[string]string{"p/BUILD": "load(':defs.star', 'N')\n", "p/defs.star": loop + "N = spin()\n"}, false},
		{"rule", "analysing //p:s", map[string]string{"p/BUILD": "load(':defs.star', 'r')\nr(name = 's')\n",
			"p/defs.star": loop + "def _impl(ctx):\n    spin()\n    return []\n\nr = rule(implementation = _impl)\n"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			c.files["WORKSPACE.hep"] = ""
			for p, s := range c.files {
				os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
				os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := &cancelOnNotice{what: c.busy, cancel: cancel}
			l, err := NewLoaderContext(ctx, root, w)
			if err != nil {
				t.Fatal(err)
			}
			if c.analyse {
				_, err = l.Analyze([]graph.Label{{Pkg: "p", Name: "s"}})
			} else {
				_, err = l.Package("", "p")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want an error wrapping context.Canceled\nstderr: %s", err, w.text.String())
			}
		})
	}
}
