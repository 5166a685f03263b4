package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// isolatingStrategies are the strategies that build a private exec root,
// each with its own sandbox root inside base.
func isolatingStrategies(t *testing.T, base string) []Strategy {
	list := []Strategy{NewSymlink(filepath.Join(base, "sandbox-symlink"))}
	if l, err := NewLinux(filepath.Join(base, "sandbox-linux"), base); err == nil {
		list = append(list, l)
	} else {
		t.Logf("linux strategy not tested: %v", err)
	}
	return list
}

// A workspace laid out as hepbuild lays it out: hepbuild-out links into
// the output base.
func slotWorkspace(t *testing.T) (root, base string) {
	root, base = t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "out"), filepath.Join(root, "hepbuild-out")); err != nil {
		t.Fatal(err)
	}
	return root, base
}

// Consecutive commands reuse one sandbox folder; each sees exactly its own
// declared inputs and output folders, never what the previous one
// declared, wrote or broke.
func TestSlotReuseShowsOnlyDeclared(t *testing.T) {
	root, base := slotWorkspace(t)
	for _, st := range isolatingStrategies(t, base) {
		t.Run(st.Name(), func(t *testing.T) {
			writeFile(t, root, "pkg/a.txt", "a1", 0o644)
			writeFile(t, root, "other/b.txt", "b", 0o644)
			writeFile(t, root, "hepbuild-out/pkg/gen.txt", "gen", 0o444)
			steps := []struct {
				name       string
				inputs     []string
				outputs    []string
				outputDirs []string
				script     string
				before     func()
				wantTree   []string
				wantOut    string
				wantFiles  map[string]string // exec-root files after the run
			}{{
				name:       "first",
				inputs:     []string{"pkg/a.txt", "hepbuild-out/pkg/gen.txt"},
				outputs:    []string{"hepbuild-out/pkg/out1.txt"},
				outputDirs: []string{"hepbuild-out/pkg/dir1"},
				// Besides its outputs, it leaves files, a folder it cannot
				// be cleared of easily, and an input replaced by its own file.
				script: `cat pkg/a.txt hepbuild-out/pkg/gen.txt > hepbuild-out/pkg/out1.txt
echo x > hepbuild-out/pkg/dir1/f
echo stray > hepbuild-out/pkg/stray.txt
mkdir -p hepbuild-out/pkg/sub/deeper && echo x > hepbuild-out/pkg/sub/deeper/x && chmod 000 hepbuild-out/pkg/sub/deeper hepbuild-out/pkg/sub
rm -f hepbuild-out/pkg/gen.txt && echo evil > hepbuild-out/pkg/gen.txt
(echo stray > stray.txt) 2>/dev/null
true`,
				wantTree: []string{"hepbuild-out", "hepbuild-out/pkg", "hepbuild-out/pkg/dir1", "hepbuild-out/pkg/gen.txt", "pkg", "pkg/a.txt"},
				wantFiles: map[string]string{
					"hepbuild-out/pkg/out1.txt": "a1gen",
					"hepbuild-out/pkg/dir1/f":   "x\n",
					"hepbuild-out/pkg/gen.txt":  "gen",
				},
			}, {
				name:      "other inputs",
				inputs:    []string{"hepbuild-out/pkg/gen.txt", "other/b.txt", "pkg/a.txt"},
				outputs:   []string{"hepbuild-out/other/out2.txt"},
				script:    `cat hepbuild-out/pkg/gen.txt other/b.txt > hepbuild-out/other/out2.txt; cat hepbuild-out/pkg/gen.txt`,
				wantTree:  []string{"hepbuild-out", "hepbuild-out/other", "hepbuild-out/pkg", "hepbuild-out/pkg/gen.txt", "other", "other/b.txt", "pkg", "pkg/a.txt"},
				wantOut:   "gen",
				wantFiles: map[string]string{"hepbuild-out/other/out2.txt": "genb"},
			}, {
				name:    "a changed input",
				inputs:  []string{"pkg/a.txt"},
				outputs: []string{"hepbuild-out/pkg/out1.txt"},
				// A new file at the same path, as an editor saves it.
				before: func() {
					os.Remove(filepath.Join(root, "pkg/a.txt"))
					writeFile(t, root, "pkg/a.txt", "a2", 0o644)
				},
				script:    `cat pkg/a.txt > hepbuild-out/pkg/out1.txt; cat pkg/a.txt`,
				wantTree:  []string{"hepbuild-out", "hepbuild-out/pkg", "pkg", "pkg/a.txt"},
				wantOut:   "a2",
				wantFiles: map[string]string{"hepbuild-out/pkg/out1.txt": "a2"},
			}, {
				name:     "nothing",
				script:   `true`,
				wantTree: nil,
			}}
			for _, step := range steps {
				if step.before != nil {
					step.before()
				}
				var out bytes.Buffer
				script := "tree=$(find . -mindepth 1 | sort)\n" + step.script + "\necho; echo ---; echo \"$tree\""
				res, err := st.Run(context.Background(), Spec{
					ExecRoot:   root,
					Argv:       []string{"/bin/bash", "-c", script},
					Env:        hostEnv(),
					Inputs:     step.inputs,
					Outputs:    step.outputs,
					OutputDirs: step.outputDirs,
					Stdout:     &out,
					Stderr:     &out,
				})
				if err != nil || !res.Success() {
					t.Fatalf("%s: got %+v, %v; output:\n%s", step.name, res, err, out.String())
				}
				printed, listing, ok := strings.Cut(out.String(), "\n---\n")
				if !ok {
					t.Fatalf("%s: output %q lacks the tree", step.name, out.String())
				}
				if got := strings.TrimSuffix(printed, "\n"); got != step.wantOut {
					t.Errorf("%s: output = %q, want %q", step.name, got, step.wantOut)
				}
				var tree []string
				for _, l := range strings.Fields(listing) {
					tree = append(tree, strings.TrimPrefix(l, "./"))
				}
				if diff := cmp.Diff(step.wantTree, tree); diff != "" {
					t.Errorf("%s: the command saw another tree than its declared inputs and output folders; mismatch (-want +got):\n%s", step.name, diff)
				}
				for p, want := range step.wantFiles {
					if got := readFile(t, root, p); got != want {
						t.Errorf("%s: %s = %q, want %q", step.name, p, got, want)
					}
				}
				for _, p := range []string{"stray.txt", "hepbuild-out/pkg/stray.txt", "hepbuild-out/pkg/sub"} {
					if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s: undeclared output %s was kept (err %v)", step.name, p, err)
					}
				}
			}
			// One folder served every step.
			sandboxRoot := filepath.Join(base, "sandbox-"+st.Name())
			if entries, _ := os.ReadDir(sandboxRoot); len(entries) != 1 {
				t.Errorf("sandbox root holds %d folders, want the one reused slot", len(entries))
			}
			if err := st.(interface{ Close() error }).Close(); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(sandboxRoot); len(entries) != 0 {
				t.Errorf("sandbox folders left after Close: %v", entries)
			}
		})
	}
}

// Concurrent commands each get their own slot: none sees another's inputs.
func TestSlotsConcurrent(t *testing.T) {
	root, base := slotWorkspace(t)
	const workers, runs = 4, 6
	for w := 0; w < workers; w++ {
		for r := 0; r < runs; r++ {
			writeFile(t, root, fmt.Sprintf("in/w%d/r%d.txt", w, r), fmt.Sprintf("%d.%d", w, r), 0o644)
		}
	}
	for _, st := range isolatingStrategies(t, base) {
		t.Run(st.Name(), func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, workers*runs)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := 0; r < runs; r++ {
						in := fmt.Sprintf("in/w%d/r%d.txt", w, r)
						out := fmt.Sprintf("hepbuild-out/w%d/r%d.txt", w, r)
						var buf bytes.Buffer
						res, err := st.Run(context.Background(), Spec{
							ExecRoot: root,
							Argv:     []string{"/bin/bash", "-c", fmt.Sprintf("find in -type f -o -type l | sort | tr '\\n' ' '; cat %s > %s", in, out)},
							Env:      hostEnv(),
							Inputs:   []string{in},
							Outputs:  []string{out},
							Stdout:   &buf,
							Stderr:   &buf,
						})
						if err != nil || !res.Success() {
							errs <- fmt.Errorf("%s: got %+v, %v; output %q", in, res, err, buf.String())
							continue
						}
						if got, want := buf.String(), in+" "; got != want {
							errs <- fmt.Errorf("%s: saw inputs %q, want %q", in, got, want)
						}
						if got, want := readFileErr(root, out), fmt.Sprintf("%d.%d", w, r); got != want {
							errs <- fmt.Errorf("%s = %q, want %q", out, got, want)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func readFileErr(root, rel string) string {
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return err.Error()
	}
	return string(b)
}
