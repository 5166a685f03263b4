package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A source file that is a symbolic link, to a file of another package or
// through a chain of relative links, or to a file outside the workspace,
// is read through its link in every strategy.
func TestSymlinkedSources(t *testing.T) {
	outside := filepath.Join("/var/lib", fmt.Sprintf("hepbuild-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000))
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	if err := os.WriteFile(filepath.Join(outside, "far.txt"), []byte("far\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setup := func(t *testing.T, root string) Spec {
		writeFile(t, root, "data/real.txt", "real\n", 0o644)
		for link, target := range map[string]string{
			"pkg/link.txt":   "../data/real.txt",
			"pkg/chain1.txt": "chain2.txt",
			"pkg/chain2.txt": "sub/../../data/real.txt",
			"pkg/far.txt":    filepath.Join(outside, "far.txt"),
		} {
			os.MkdirAll(filepath.Join(root, "pkg/sub"), 0o755)
			if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
				t.Fatal(err)
			}
		}
		return Spec{ExecRoot: root, Env: hostEnv(),
			Argv:    []string{"/bin/bash", "-c", "cat pkg/link.txt pkg/chain1.txt pkg/far.txt > hepbuild-out/pkg/out.txt"},
			Inputs:  []string{"pkg/link.txt", "pkg/chain1.txt", "pkg/far.txt"},
			Outputs: []string{"hepbuild-out/pkg/out.txt"}}
	}
	check := func(t *testing.T, st Strategy, s Spec) {
		var out strings.Builder
		s.Stdout, s.Stderr = &out, &out
		res, err := st.Run(context.Background(), s)
		if err != nil || !res.Success() {
			t.Fatalf("got %+v, %v; output:\n%s", res, err, out.String())
		}
		if got := readFile(t, s.ExecRoot, "hepbuild-out/pkg/out.txt"); got != "real\nreal\nfar\n" {
			t.Errorf("output = %q", got)
		}
	}
	for _, st := range hostPIDStrategies(t) {
		t.Run(st.Name(), func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "hepbuild-out"), 0o755)
			check(t, st, setup(t, root))
		})
	}
	t.Run("linux", func(t *testing.T) {
		bothWays(t, func(t *testing.T, l *Linux, root, _ string) {
			check(t, l, setup(t, root))
		})
	})
}
