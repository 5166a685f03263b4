package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/internal/testserver"
)

// fanout is an analysis in miniature: a fan-out of histograms over
// samples, a merge and a tagged-local summary.
const fanout = `
task(name = "hist_a", srcs = ["a.txt"], outs = ["hist_a.txt"], cmd = "sort $< > $@; echo filled a")
task(name = "hist_b", srcs = ["b.txt"], outs = ["hist_b.txt"], cmd = "sort -r $< > $@; echo filled b")
task(name = "hist_c", srcs = ["c.txt"], outs = ["hist_c.txt"], cmd = "tr a-z A-Z < $< > $@")
task(name = "hist_d", srcs = ["a.txt", "c.txt"], outs = ["hist_d.txt"], cmd = "cat $(SRCS) | wc -l > $@")
task(name = "merge", srcs = [":hist_a", ":hist_b", ":hist_c", ":hist_d"], outs = ["merged.txt"], cmd = "cat $(SRCS) > $@")
task(name = "summary", srcs = [":merge"], outs = ["summary.txt"], cmd = "wc -c < $< > $@", tags = ["local"])
`

var fanoutFiles = map[string]string{"BUILD": fanout, "a.txt": "z\ny\nx\n", "b.txt": "1\n3\n2\n", "c.txt": "abc\n"}

// outputsOf reads every file under hepbuild-out.
func outputsOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	base := filepath.Join(root, "hepbuild-out")
	err := filepath.Walk(base+"/", func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(base, p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSlurmBuildsLikeLocal: on a real Slurm cluster, the fan-out runs as
// job arrays through hepbuild worker, the outputs are byte-identical to a
// local build's, the local-tagged action stays here, and a second build
// after clean restores everything from the cache without a job.
func TestSlurmBuildsLikeLocal(t *testing.T) {
	testserver.StartSlurm(t)
	t.Setenv(asMainEnv, "1") // the jobs run this test binary as hepbuild worker

	local, localCache := clone(t, fanoutFiles)
	buildOutcomes(t, local, "//:summary", "--disk-cache", localCache)
	want := outputsOf(t, local)

	root, diskCache := clone(t, fanoutFiles)
	args := []string{"//:summary", "--disk-cache", diskCache, "--executor=slurm", "--batch-poll=300ms", "--batch-window=300ms", "--actions-per-job=2"}
	r, ev := buildOutcomes(t, root, args...)
	if got := outputsOf(t, root); !equalMaps(got, want) {
		t.Errorf("outputs differ from the local build's:\n got %v\nwant %v", got, want)
	}
	if n := len(ev["action_finished"]); n != 6 {
		t.Errorf("%d actions ran, want 6\n%s", n, r.stderr)
	}
	// Every run action but the local summary went through a job.
	submitted := eventTargets(t, ev, "job_submitted")
	if want := []string{"//:hist_a", "//:hist_b", "//:hist_c", "//:hist_d", "//:merge"}; !equalSlices(submitted, want) {
		t.Errorf("jobs submitted for %v, want %v", submitted, want)
	}
	// The log of a remote run comes back like a local one's.
	if b, err := os.ReadFile(logOf(t, root, "hist_a.txt")); err != nil || string(b) != "filled a\n" {
		t.Errorf("log of hist_a: %q %v", b, err)
	}

	if r := hepbuild(t, root, "clean"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	_, ev2 := buildOutcomes(t, root, args...)
	if n := len(ev2["action_finished"]) + len(ev2["job_submitted"]); n != 0 {
		t.Errorf("after clean, %d actions ran or were submitted", n)
	}
	if got := outputsOf(t, root); !equalMaps(got, want) {
		t.Errorf("restored outputs differ")
	}
}

func eventTargets(t *testing.T, ev map[string][]string, typ string) []string {
	seen := map[string]bool{}
	var out []string
	for _, tg := range ev[typ] {
		if !seen[tg] {
			seen[tg] = true
			out = append(out, tg)
		}
	}
	sort.Strings(out)
	return out
}

func logOf(t *testing.T, root, out string) string {
	r := hepbuild(t, root, "info", "output_base")
	return filepath.Join(strings.TrimSpace(r.stdout), "logs", out+".log")
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func equalSlices(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}
