package local

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/sandbox"
)

// flakyFetcher fails its first downloads with an infrastructure error
// after writing part of the file, then writes content. It stands for a
// storage server that leaves a request unanswered: the real servers'
// behaviour is tested in cmd/hepbuild; this checks only the retry.
type flakyFetcher struct {
	failures int
	calls    int
	err      error
}

func (f *flakyFetcher) Fetch(_ context.Context, _ *exec.RemoteFile, w io.Writer) error {
	f.calls++
	if f.calls <= f.failures {
		io.WriteString(w, "partial")
		return f.err
	}
	_, err := io.WriteString(w, "content")
	return err
}

func TestFetchRetriesOnce(t *testing.T) {
	stalled := errors.New("remote unavailable: timeout awaiting response headers")
	for _, c := range []struct {
		name      string
		fetcher   *flakyFetcher
		wantCalls int
		wantOK    bool
	}{
		{"one stall", &flakyFetcher{failures: 1, err: stalled}, 2, true},
		{"two stalls", &flakyFetcher{failures: 2, err: stalled}, 2, false},
		{"content refused", &flakyFetcher{failures: 1, err: &exec.FetchError{URL: "u", Msg: "refused"}}, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			a := action(exec.KindFetch)
			a.SetExtra().Remote = &exec.RemoteFile{URL: "root://h//f", Size: 7}
			a.Outputs = []exec.Artifact{{Path: "hepbuild-out/pkg/f"}}
			res, err := New(sandbox.None{}, WithFetcher(c.fetcher)).Execute(context.Background(), a, root, "")
			if c.fetcher.calls != c.wantCalls {
				t.Errorf("%d downloads, want %d", c.fetcher.calls, c.wantCalls)
			}
			b, rerr := os.ReadFile(filepath.Join(root, "hepbuild-out/pkg/f"))
			if c.wantOK {
				if err != nil || !res.Success() || string(b) != "content" {
					t.Errorf("got %+v, %v, output %q", res, err, b)
				}
				return
			}
			if err == nil && res.Success() {
				t.Error("succeeded")
			}
			if rerr == nil {
				t.Errorf("a failed download left %q at the output", b)
			}
		})
	}
}
