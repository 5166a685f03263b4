package starlark

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.starlark.net/starlark"

	"github.com/hepbuild/hepbuild/graph"
)

// withQueueAfter runs fn with BUILD files handing their rules to a
// ruleQueue after n rules.
func withQueueAfter(t *testing.T, n int, fn func()) {
	t.Helper()
	old := pipelineAfter
	pipelineAfter = n
	defer func() { pipelineAfter = old }()
	fn()
}

// TestErrorsQueued: every bad input of testdata/errors gives the same
// error, to the byte, whether its BUILD file declares its rules on a
// queue from the first one or without one.
func TestErrorsQueued(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.txtar")
	if len(files) == 0 {
		t.Fatal("no test archives")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txtar"), func(t *testing.T) {
			var unqueued, queued error
			withQueueAfter(t, 1<<30, func() { _, unqueued, _ = analyzeArchive(t, f) })
			withQueueAfter(t, 0, func() { _, queued, _ = analyzeArchive(t, f) })
			if unqueued == nil || queued == nil || queued.Error() != unqueued.Error() {
				t.Errorf("error with a queue:\n%v\nwithout one:\n%v", queued, unqueued)
			}
		})
	}
}

// TestQueuedRules: with a queue, a BUILD file that goes wrong in a macro
// after printing and after many rules reports what it does without one:
// the same error and backtrace, each print once and nothing it printed
// after the bad rule; existing_rules sees every rule declared
// before it; a package without errors has the same targets in the same
// order.
func TestQueuedRules(t *testing.T) {
	files := map[string]string{
		"WORKSPACE.hep": "",
		"defs.star": "def pair(name):\n" +
			"    native.task(name = name, outs = [name + '.txt'], cmd = 'touch $@')\n" +
			"    native.task(name = name + '_b', srcs = [':' + name], outs = [name + '_b.txt'], cmd = 'touch $@')\n",
		"BUILD": "load(':defs.star', 'pair')\n" +
			"[pair('r%d' % i) for i in range(600)]\n" +
			"print('rules: %d' % len(existing_rules()))\n" +
			"exports_files(['in.txt'])\n" +
			"print('before')\n" +
			"pair('r7')\n" +
			"print('after')\n",
		"in.txt": "",
	}
	load := func(n int, build string) (out string, order []string, err error) {
		root := writeTree(t, map[string]string{"WORKSPACE.hep": files["WORKSPACE.hep"], "defs.star": files["defs.star"], "BUILD": build, "in.txt": ""})
		var stderr bytes.Buffer
		withQueueAfter(t, n, func() {
			l, lerr := NewLoader(root, &stderr)
			if lerr != nil {
				t.Fatal(lerr)
			}
			p, perr := l.Package("", "")
			if p != nil {
				order = p.Order
			}
			err = perr
		})
		// A slow machine (-race) may add notices of a slow file.
		var lines []string
		for _, line := range strings.SplitAfter(stderr.String(), "\n") {
			if !strings.Contains(line, ": still running after ") {
				lines = append(lines, line)
			}
		}
		return strings.Join(lines, ""), order, err
	}
	wantOut, _, wantErr := load(1<<30, files["BUILD"])
	if wantErr == nil || !strings.Contains(wantErr.Error(), "duplicate target name") || !strings.Contains(wantOut, "rules: 1200") || strings.Contains(wantOut, "after") {
		t.Fatalf("without a queue: %v\n%s", wantErr, wantOut)
	}
	for _, n := range []int{0, 100} {
		out, _, err := load(n, files["BUILD"])
		if err == nil || err.Error() != wantErr.Error() {
			t.Errorf("queue after %d rules: error\n%v\nwant\n%v", n, err, wantErr)
		}
		if diff := cmp.Diff(wantOut, out); diff != "" {
			t.Errorf("queue after %d rules: stderr mismatch (-want +got):\n%s", n, diff)
		}
	}
	good := strings.Replace(files["BUILD"], "pair('r7')", "pair('z7')", 1)
	wantOut, wantOrder, err := load(1<<30, good)
	if err != nil {
		t.Fatal(err)
	}
	out, order, err := load(0, good)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantOrder, order); diff != "" {
		t.Errorf("targets with a queue: mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantOut, out); diff != "" {
		t.Errorf("stderr with a queue: mismatch (-want +got):\n%s", diff)
	}
}

// TestConvertAttrAllocs: converting a label list makes the list and the
// value that holds it, and nothing else (a return inside a range over a
// function once moved convertAttr's results to the heap, two allocations
// for each of millions of attributes).
func TestConvertAttrAllocs(t *testing.T) {
	spec := &attrSpec{typ: graph.AttrLabelList}
	v := starlark.NewList([]starlark.Value{starlark.String("in.txt")})
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := convertAttr(spec, "srcs", v, "", "pkg"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("convertAttr of a one-label list: %v allocations, want 2", allocs)
	}
}

// overlapWriter counts the writes made while another was in progress.
type overlapWriter struct {
	busy, overlaps atomic.Int32
}

func (w *overlapWriter) Write(p []byte) (int, error) {
	if w.busy.Add(1) > 1 {
		w.overlaps.Add(1)
	}
	time.Sleep(10 * time.Microsecond) // widen the window
	w.busy.Add(-1)
	return len(p), nil
}

// TestPrintsWriteOneAtATime: BUILD files that load concurrently print one
// line at a time to the loader's stderr, which need not be safe for
// concurrent use (a bytes.Buffer in tests), nor race with the notices of
// slow files.
func TestPrintsWriteOneAtATime(t *testing.T) {
	files := map[string]string{"WORKSPACE.hep": ""}
	for _, p := range []string{"a", "b", "c", "d"} {
		files[p+"/BUILD"] = "[print(i) for i in range(300)]\n"
	}
	root := writeTree(t, files)
	w := &overlapWriter{}
	l, err := NewLoader(root, w)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, p := range []string{"a", "b", "c", "d"} {
		wg.Go(func() {
			if _, err := l.Package("", p); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := w.overlaps.Load(); n > 0 {
		t.Errorf("%d writes to stderr overlapped another", n)
	}
}

// TestQueuedErrorStopsLongFile: a duplicate among the last rules of a file
// stops the computation after them, as it does without a queue, rather
// than wait in a partial batch until the end of the file.
func TestQueuedErrorStopsLongFile(t *testing.T) {
	root := writeTree(t, map[string]string{
		"WORKSPACE.hep": "",
		"BUILD": "[task(name = 't%d' % i, outs = ['t%d.o' % i], cmd = 'x') for i in range(300)]\n" +
			"task(name = 't1', outs = ['z'], cmd = 'x')\n" +
			"def spin():\n    for x in range(1000000000):\n        pass\n" +
			"spin()\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	withQueueAfter(t, 0, func() {
		l, lerr := NewLoaderContext(ctx, root, io.Discard)
		if lerr != nil {
			t.Fatal(lerr)
		}
		_, err = l.Package("", "")
	})
	if err == nil || !strings.Contains(err.Error(), `duplicate target name "t1"`) {
		t.Errorf("got %v, want the duplicate (a timeout: the loop ran on)", err)
	}
}
