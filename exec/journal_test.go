package exec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/graph"
)

// outputFile writes a file and returns its FileInfo.
func outputFile(t *testing.T, dir, name, content string) os.FileInfo {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o444); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func journalPaths(j *Journal) map[string]cache.Digest {
	m := map[string]cache.Digest{}
	for p, o := range j.outputs {
		m[p] = o.Key
	}
	return m
}

func TestJournalSurvivesReopen(t *testing.T) {
	base := t.TempDir()
	files := t.TempDir()
	k1, k2 := cache.FromBytes([]byte("k1")), cache.FromBytes([]byte("k2"))
	j, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	j.record("hepbuild-out/a", k1, "fp-a", cache.FromBytes([]byte("a")), outputFile(t, files, "a", "a"))
	j.record("hepbuild-out/b", k1, "", cache.FromBytes([]byte("b")), outputFile(t, files, "b", "b"))
	j.record("hepbuild-out/we\tird\n", k2, "", cache.FromBytes([]byte("c")), outputFile(t, files, "c", "c"))
	j.forget([]string{"hepbuild-out/b"})
	// Not closed: a killed build keeps what it appended, once written
	// (within journalDelay).
	waitWritten(t, j)
	want := map[string]cache.Digest{"hepbuild-out/a": k1, "hepbuild-out/we\tird\n": k2}

	j2, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, journalPaths(j2)); diff != "" {
		t.Errorf("reopened journal mismatch (-want +got):\n%s", diff)
	}
	if rec, _ := j2.output("hepbuild-out/a"); rec.Fingerprint != "fp-a" {
		t.Errorf("reopened journal: fingerprint of hepbuild-out/a = %q, want %q", rec.Fingerprint, "fp-a")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j3, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, journalPaths(j3)); diff != "" {
		t.Errorf("compacted journal mismatch (-want +got):\n%s", diff)
	}
	// Four lines for two live outputs: not worth rewriting yet.
	if j3.lines != 4 {
		t.Errorf("journal has %d lines after Close, want the 4 appended", j3.lines)
	}
	rec, _ := j3.output("hepbuild-out/a")
	if fi, _ := os.Lstat(filepath.Join(files, "a")); !rec.sameStat(fi) {
		t.Errorf("record %+v does not match the file's stat", rec)
	}
}

func TestJournalIgnoresCorruptLines(t *testing.T) {
	base := t.TempDir()
	files := t.TempDir()
	k := cache.FromBytes([]byte("k"))
	j, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		j.record(name, k, "", cache.FromBytes([]byte(name)), outputFile(t, files, name, name))
	}
	waitWritten(t, j)
	j.f.Close()
	path := filepath.Join(base, journalFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	// Flip a digit of b's record, and tear c's in half, as a killed write would.
	lines[1] = strings.Replace(lines[1], "\t1\t", "\t7\t", 1)
	lines[2] = lines[2][:len(lines[2])/2]
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}

	j2, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]cache.Digest{"a": k}, journalPaths(j2)); diff != "" {
		t.Errorf("journal mismatch (-want +got):\n%s", diff)
	}
	// Appending after a torn line starts a new line.
	j2.record("d", k, "", cache.FromBytes([]byte("d")), outputFile(t, files, "d", "d"))
	waitWritten(t, j2)
	j2.f.Close()
	j3, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]cache.Digest{"a": k, "d": k}, journalPaths(j3)); diff != "" {
		t.Errorf("journal after append mismatch (-want +got):\n%s", diff)
	}
}

func TestJournalPrevious(t *testing.T) {
	base := t.TempDir()
	a := &Action{
		Owner: graph.Label{Pkg: "pkg", Name: "x"}, Mnemonic: "Task", Kind: KindRun,
		Argv: []string{"/bin/bash", "-c", "make"}, Env: map[string]string{"A": "1"},
		Outputs: []Artifact{{Path: "hepbuild-out/pkg/x"}, {Path: "hepbuild-out/pkg/y"}},
	}
	key := func(s string) *Key {
		return &Key{Digest: cache.FromBytes([]byte(s)), Environment: cache.FromBytes([]byte("env"))}
	}
	inputs := map[string]cache.Digest{"pkg/in.txt": cache.FromBytes([]byte("in"))}
	j, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	j.explain(newActionRecord(a, key("first"), inputs))
	j.explain(newActionRecord(a, key("second"), inputs))
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// Two records for one action: the superseded one is read past, not
	// yet rewritten away.
	b, _ := os.ReadFile(filepath.Join(base, explainFile))
	if n := bytes.Count(b, []byte("\n")); n != 2 {
		t.Errorf("explain log has %d lines, want 2", n)
	}

	j2, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"hepbuild-out/pkg/x", "hepbuild-out/pkg/y"} {
		rec, ok := j2.Previous(p)
		if !ok {
			t.Fatalf("no previous record for %s", p)
		}
		want := &ActionRecord{
			Key: key("second").Digest, Owner: "//pkg:x", Mnemonic: "Task",
			Outputs: []string{"hepbuild-out/pkg/x", "hepbuild-out/pkg/y"},
			Argv:    a.Argv, Env: a.Env, Inputs: inputs, Environment: cache.FromBytes([]byte("env")),
		}
		rec.Time = time.Time{}
		if diff := cmp.Diff(want, rec); diff != "" {
			t.Errorf("Previous(%s) mismatch (-want +got):\n%s", p, diff)
		}
	}
	if _, ok := j2.Previous("hepbuild-out/pkg/none"); ok {
		t.Error("Previous found a record for an output never built")
	}
}

func TestLockOutputBaseWaits(t *testing.T) {
	base := t.TempDir()
	unlock, err := lockOutputBase(base, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var msg bytes.Buffer
	acquired := make(chan func())
	go func() {
		u, err := lockOutputBase(base, &msg)
		if err != nil {
			t.Error(err)
		}
		acquired <- u
	}()
	select {
	case <-acquired:
		t.Fatal("a second build took the lock while the first held it")
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case u := <-acquired:
		u()
	case <-time.After(5 * time.Second):
		t.Fatal("the second build did not get the lock once it was free")
	}
	want := "waiting for another hepbuild build in this workspace (pid " + strconv.Itoa(os.Getpid()) + ")\n"
	if got := msg.String(); got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

func TestPrepareOutputBase(t *testing.T) {
	root, base := t.TempDir(), t.TempDir()
	if err := PrepareOutputBase(root, base); err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(filepath.Join(root, OutDir))
	if err != nil || target != filepath.Join(base, "out") {
		t.Errorf("hepbuild-out -> %q (%v), want %s", target, err, filepath.Join(base, "out"))
	}
	// A moved output base moves the link.
	base2 := t.TempDir()
	if err := PrepareOutputBase(root, base2); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(filepath.Join(root, OutDir)); target != filepath.Join(base2, "out") {
		t.Errorf("hepbuild-out -> %q after moving the output base", target)
	}
	// A real folder is not silently replaced.
	root2 := t.TempDir()
	if err := os.Mkdir(filepath.Join(root2, OutDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := PrepareOutputBase(root2, base); err == nil {
		t.Error("a hepbuild-out folder was accepted as the link")
	}
}

func TestStampCheck(t *testing.T) {
	base, dir := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "in.txt")
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range map[string]string{file: "in", filepath.Join(tree, "sub", "x"): "x"} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	s := Stamp{Key: StampKey("//:all"), Files: []string{file, missing}, Trees: []string{tree}, Actions: 3, Roots: []string{"hepbuild-out/a"}}
	if err := WriteStamp(base, s); err != nil {
		t.Fatal(err)
	}
	got, ok := CheckStamp(base, s.Key)
	if !ok {
		t.Fatal("stamp does not match right after writing it")
	}
	if diff := cmp.Diff(Stamp{Key: s.Key, Actions: 3, Roots: s.Roots}, got); diff != "" {
		t.Errorf("stamp mismatch (-want +got):\n%s", diff)
	}
	if _, ok := CheckStamp(base, StampKey("//:other")); ok {
		t.Error("a stamp matched another key")
	}

	for _, c := range []struct {
		name   string
		change func() error
	}{
		{"file inside a tree", func() error { return os.WriteFile(filepath.Join(tree, "sub", "x"), []byte("y"), 0o644) }},
		{"file added to a tree", func() error { return os.WriteFile(filepath.Join(tree, "sub", "z"), nil, 0o644) }},
		{"a missing path appears", func() error { return os.WriteFile(missing, nil, 0o644) }},
		{"file removed", func() error { return os.Remove(file) }},
		{"stamp torn", func() error {
			// Not synced: a crash may leave it cut short.
			p := stampPath(base, s.Key)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, b[:len(b)-1], 0o644)
		}},
		{"stamp's digest wrong", func() error {
			// Every path as recorded: only the digest tells.
			p := stampPath(base, s.Key)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)-1] ^= 1
			return os.WriteFile(p, b, 0o644)
		}},
		{"stamp empty", func() error { return os.WriteFile(stampPath(base, s.Key), nil, 0o644) }},
		{"stamp corrupted", func() error {
			p := stampPath(base, s.Key)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 1
			return os.WriteFile(p, b, 0o644)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := WriteStamp(base, s); err != nil {
				t.Fatal(err)
			}
			if err := c.change(); err != nil {
				t.Fatal(err)
			}
			if _, ok := CheckStamp(base, s.Key); ok {
				t.Error("stamp still matches")
			}
			_ = os.Remove(missing)
			_ = os.WriteFile(file, []byte("in"), 0o644)
		})
	}
}

// TestStampRacyWholeSeconds: on a file system with whole-second timestamps,
// a path written in the same second as the stamp is recorded is racy.
func TestStampRacyWholeSeconds(t *testing.T) {
	recorded := int64(1_700_000_000_500_000_000) // x.5 s
	cases := []struct {
		name  string
		mtime int64
		racy  bool
	}{
		{"nanosecond timestamps, long before", recorded - 1e9, false},
		{"nanosecond timestamps, just before", recorded - 50e6, true},
		{"whole seconds, same second", 1_700_000_000_000_000_000, true},
		{"whole seconds, one second before", 1_699_999_999_000_000_000, true},
		{"whole seconds, three seconds before", 1_699_999_997_000_000_000, false},
	}
	for _, c := range cases {
		s := pathStat{exists: true, mtime: c.mtime, ctime: c.mtime}
		if got := s.racy(recorded); got != c.racy {
			t.Errorf("%s: racy = %v, want %v", c.name, got, c.racy)
		}
	}
}

// TestJournalRemoteOnlyLines: an output kept only in the cache survives
// reopening and compaction as an "r" line, with its digest, executable bit
// and fingerprint; forgetting it is a "d" line as for any output.
func TestJournalRemoteOnlyLines(t *testing.T) {
	base := t.TempDir()
	key, d := cache.FromBytes([]byte("k")), cache.FromBytes([]byte("tool"))
	j, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	j.record("hepbuild-out/tool", key, "fp", d, outputFile(t, t.TempDir(), "tool", "tool"))
	j.forget([]string{"hepbuild-out/tool"})
	j.recordRemote("hepbuild-out/tool", key, "fp", d, true)
	j.recordRemote("hepbuild-out/data", key, "", cache.FromBytes([]byte("data")), false)
	waitWritten(t, j)
	want := outputRecord{Key: key, Fingerprint: "fp", Digest: d, Remote: true, Executable: true}
	for _, step := range []string{"appended", "compacted"} {
		j2, err := OpenJournal(base)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, j2.outputs["hepbuild-out/tool"]); diff != "" {
			t.Errorf("%s: record mismatch (-want +got):\n%s", step, diff)
		}
		if !j2.RemoteOnly("hepbuild-out/data") || j2.outputs["hepbuild-out/data"].Executable {
			t.Errorf("%s: data is %+v", step, j2.outputs["hepbuild-out/data"])
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		j = j2
	}
	b, _ := os.ReadFile(filepath.Join(base, journalFile))
	line := "r\thepbuild-out/tool\t" + key.String() + "\t" + d.String() + "\t1\tfp\t"
	if !strings.Contains(string(b), line) {
		t.Errorf("journal lacks the line %q:\n%s", line, b)
	}
	if n := j.ForgetRemoteOnly(nil, true); n != 2 {
		t.Errorf("ForgetRemoteOnly forgot %d records, want 2", n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, _ = OpenJournal(base)
	if len(j.outputs) != 0 {
		t.Errorf("records left after ForgetRemoteOnly: %v", j.outputs)
	}
}

// TestJournalCompactsOnceMostlySuperseded: Close rewrites the journal and
// the explain log without their superseded lines once those outnumber the
// live ones, and leaves them alone before.
func TestJournalCompactsOnceMostlySuperseded(t *testing.T) {
	base := t.TempDir()
	files := t.TempDir()
	a := &Action{
		Owner: graph.Label{Pkg: "pkg", Name: "x"}, Mnemonic: "Task", Kind: KindRun,
		Argv:    []string{"/bin/bash", "-c", "make"},
		Outputs: []Artifact{{Path: "hepbuild-out/pkg/x"}},
	}
	countLines := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(base, name))
		return bytes.Count(b, []byte("\n"))
	}
	build := func(n int) {
		t.Helper()
		j, err := OpenJournal(base)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			k := cache.FromBytes([]byte(fmt.Sprint("key", i)))
			j.explain(newActionRecord(a, &Key{Digest: k}, nil))
			j.record("hepbuild-out/pkg/x", k, "", cache.FromBytes([]byte("x")), outputFile(t, files, "x", "x"))
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	build(2)
	if j, x := countLines(journalFile), countLines(explainFile); j != 2 || x != 2 {
		t.Errorf("after 2 runs of one action: journal %d lines, explain log %d; want 2 and 2 (not yet rewritten)", j, x)
	}
	build(100)
	if j, x := countLines(journalFile), countLines(explainFile); j != 1 || x != 1 {
		t.Errorf("after 102 runs of one action: journal %d lines, explain log %d; want 1 and 1", j, x)
	}
	j, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	want := cache.FromBytes([]byte("key99"))
	if rec, _ := j.output("hepbuild-out/pkg/x"); rec.Key != want {
		t.Errorf("journal keeps key %s, want the last one recorded", rec.Key)
	}
	if rec, ok := j.Previous("hepbuild-out/pkg/x"); !ok || rec.Key != want {
		t.Errorf("explain log keeps %+v, want the last record", rec)
	}
}

// TestCompactExplainKeepsTheRecordReadersUse: a newer line for an action
// that readers skip (its outputs decode, another field does not) must not
// make compaction drop the older record they use instead.
func TestCompactExplainKeepsTheRecordReadersUse(t *testing.T) {
	base := t.TempDir()
	a := &Action{
		Owner: graph.Label{Pkg: "pkg", Name: "x"}, Mnemonic: "Task", Kind: KindRun,
		Argv: []string{"/bin/bash", "-c", "make"}, Outputs: []Artifact{{Path: "hepbuild-out/pkg/x"}},
	}
	good := newActionRecord(a, &Key{Digest: cache.FromBytes([]byte("good"))}, nil)
	line, err := json.Marshal(good.toJSON())
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(line), good.Key.String(), "not-a-digest", 1)
	if bad == string(line) {
		t.Fatal("could not damage the key")
	}
	if err := os.WriteFile(filepath.Join(base, explainFile), []byte(string(line)+"\n"+bad+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	j := &Journal{dir: base}
	if err := j.compactExplain(); err != nil {
		t.Fatal(err)
	}
	recs := readExplain(filepath.Join(base, explainFile))
	if len(recs) != 1 || recs[0].Key != good.Key {
		t.Errorf("after compaction readers get %+v, want the good record", recs)
	}
}

// TestCompactExplainInPlace: compaction moves the kept lines up within
// the log it read, in their order, the last record of each action, also
// when the log ends in a line without its newline (a build killed while
// appending).
func TestCompactExplainInPlace(t *testing.T) {
	base := t.TempDir()
	line := func(name, key string) string {
		a := &Action{
			Owner: graph.Label{Pkg: "pkg", Name: name}, Mnemonic: "Task", Kind: KindRun,
			Argv: []string{"/bin/bash", "-c", "make"}, Outputs: []Artifact{{Path: "hepbuild-out/pkg/" + name}},
		}
		b, err := json.Marshal(newActionRecord(a, &Key{Digest: cache.FromBytes([]byte(key))}, nil).toJSON())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	x1, y1, x2, z1, y2 := line("x", "x1"), line("y", "y1"), line("x", "x2"), line("z", "z1"), line("y", "y2")
	for _, c := range []struct {
		name, log, want string
	}{
		{"superseded lines", x1 + "\n" + y1 + "\n" + x2 + "\n" + z1 + "\n" + y2 + "\n", x2 + "\n" + z1 + "\n" + y2 + "\n"},
		{"superseded lines, torn", x1 + "\n" + y1 + "\n" + x2 + "\n" + z1 + "\n" + y2, x2 + "\n" + z1 + "\n" + y2 + "\n"},
		{"nothing superseded, torn", x1 + "\n" + y1, x1 + "\n" + y1 + "\n"},
	} {
		if err := os.WriteFile(filepath.Join(base, explainFile), []byte(c.log), 0o644); err != nil {
			t.Fatal(err)
		}
		j := &Journal{dir: base}
		if err := j.compactExplain(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(base, explainFile))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, string(b)); diff != "" {
			t.Errorf("%s: compacted log mismatch (-want +got):\n%s", c.name, diff)
		}
	}
}

// TestStampTakesRacyOutputDigestsFromTheJournal: a file written just now
// is racy, and its digest is the one the journal recorded for it at its
// current stat, not read again: the stamp matches while the file holds
// that content, and not when the journal says it should hold another.
func TestStampTakesRacyOutputDigestsFromTheJournal(t *testing.T) {
	for _, c := range []struct {
		name     string
		recorded string // content whose digest the journal holds
		match    bool
	}{
		{"journal digest is the content's", "out", true},
		{"journal digest is another content's", "xyz", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			base, root := t.TempDir(), t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "hepbuild-out"), 0o755); err != nil {
				t.Fatal(err)
			}
			fi := outputFile(t, filepath.Join(root, "hepbuild-out"), "o.txt", "out")
			j, err := OpenJournal(base)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			j.record("hepbuild-out/o.txt", cache.FromBytes([]byte("key")), "", cache.FromBytes([]byte(c.recorded)), fi)
			s := Stamp{Key: StampKey("//:o"), Files: []string{filepath.Join(root, "hepbuild-out", "o.txt")}, Journal: j, ExecRoot: root}
			if err := WriteStamp(base, s); err != nil {
				t.Fatal(err)
			}
			if _, ok := CheckStamp(base, s.Key); ok != c.match {
				t.Errorf("stamp matches: %v, want %v", ok, c.match)
			}
		})
	}
}

// TestAppendRecordLineIsRecordLine: the lines appended straight into the
// journal's buffer are the journal's format, byte for byte.
func TestAppendRecordLineIsRecordLine(t *testing.T) {
	k, d := cache.FromBytes([]byte("key")), cache.FromBytes([]byte("out"))
	for _, c := range []struct {
		path string
		o    outputRecord
	}{
		{"hepbuild-out/a", outputRecord{Key: k, Digest: d, Size: 3, MTime: 1_700_000_000_123_456_789, Inode: 42, CTime: 1_700_000_001_000_000_000, Fingerprint: "fp"}},
		{"hepbuild-out/with\ttab", outputRecord{Key: k, Digest: d}},
		{"hepbuild-out/r", outputRecord{Key: k, Digest: d, Remote: true, Executable: true, Fingerprint: "fp"}},
		{"hepbuild-out/r0", outputRecord{Key: k, Digest: d, Remote: true}},
		{"hepbuild-out/neg", outputRecord{Key: k, Digest: d, MTime: -5}},
	} {
		if got, want := string(appendRecordLine([]byte("x"), c.path, c.o)), "x"+recordLine(c.path, c.o); got != want {
			t.Errorf("appendRecordLine(%q) = %q, want %q", c.path, got, want)
		}
	}
}

// TestJournalCloseTwice: a second Close returns what the first did, a
// failed compaction included, and the records stay readable after Close.
func TestJournalCloseTwice(t *testing.T) {
	base, files := t.TempDir(), t.TempDir()
	a := &Action{
		Owner: graph.Label{Pkg: "pkg", Name: "x"}, Mnemonic: "Task", Kind: KindRun,
		Outputs: []Artifact{{Path: "hepbuild-out/pkg/x"}},
	}
	j, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	k := cache.FromBytes([]byte("key"))
	for i := 0; i < 10; i++ {
		j.explain(newActionRecord(a, &Key{Digest: k}, nil))
	}
	j.record("hepbuild-out/pkg/x", k, "", cache.FromBytes([]byte("x")), outputFile(t, files, "x", "x"))
	waitWritten(t, j)
	// The explain log is due for compaction, which cannot read it.
	if err := os.Remove(filepath.Join(base, explainFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(base, explainFile), 0o755); err != nil {
		t.Fatal(err)
	}
	first := j.Close()
	if first == nil {
		t.Fatal("Close compacted an explain log that is a folder")
	}
	if second := j.Close(); second != first {
		t.Errorf("second Close: %v, want the first's %v", second, first)
	}
	if o, ok := j.output("hepbuild-out/pkg/x"); !ok || o.Key != k {
		t.Errorf("after Close, the record is %+v (%v), want key %s", o, ok, k)
	}
}

// BenchmarkOpenJournal loads a journal as a rebuild from the cache leaves
// it before compaction: 2,000 outputs recorded, forgotten and recorded again.
func BenchmarkOpenJournal(b *testing.B) {
	base, files := b.TempDir(), b.TempDir()
	j, err := OpenJournal(base)
	if err != nil {
		b.Fatal(err)
	}
	fi, err := os.Lstat(files)
	if err != nil {
		b.Fatal(err)
	}
	var paths []string
	for i := 0; i < 2000; i++ {
		paths = append(paths, fmt.Sprintf("hepbuild-out/out/sel/d%d_f%d.txt", i/50, i%50))
	}
	for round := 0; round < 2; round++ {
		for i, p := range paths {
			k := cache.FromBytes([]byte(fmt.Sprint("key", i)))
			j.forget([]string{p})
			j.record(p, k, "fingerprint", cache.FromBytes([]byte(p)), fi)
		}
	}
	j.mu.Lock()
	j.closed = true // no compaction
	j.f.Close()
	j.mu.Unlock()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j, err := OpenJournal(base)
		if err != nil || len(j.outputs) != len(paths) {
			b.Fatalf("%d outputs, %v", len(j.outputs), err)
		}
	}
}

// TestJournalPreviousSeesUnwrittenRecords: explain records are written in
// batches, and a Previous asked before they are must still find them.
func TestJournalPreviousSeesUnwrittenRecords(t *testing.T) {
	base := t.TempDir()
	a := &Action{
		Owner: graph.Label{Pkg: "pkg", Name: "x"}, Mnemonic: "Task", Kind: KindRun,
		Argv: []string{"/bin/true"}, Outputs: []Artifact{{Path: "hepbuild-out/pkg/x"}},
	}
	j, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	key := &Key{Digest: cache.FromBytes([]byte("k"))}
	j.explain(newActionRecord(a, key, nil))
	rec, ok := j.Previous("hepbuild-out/pkg/x")
	if !ok || rec.Key != key.Digest {
		t.Fatalf("Previous before the record was written: %v, %v", rec, ok)
	}
	// Records gathered after the first Previous are found too, and all
	// are on file after Close.
	b2 := *a
	b2.Outputs = []Artifact{{Path: "hepbuild-out/pkg/y"}}
	j.explain(newActionRecord(&b2, key, nil))
	if _, ok := j.Previous("hepbuild-out/pkg/y"); !ok {
		t.Error("Previous misses a record gathered after the log was read")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(readExplain(filepath.Join(base, explainFile))); n != 2 {
		t.Errorf("explain log holds %d records after Close, want 2", n)
	}
}

// waitWritten waits until the journal has written what it gathered, as it
// does within journalDelay without another call.
func waitWritten(t *testing.T, j *Journal) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		j.mu.Lock()
		done := len(j.buf) == 0 && len(j.xBuf) == 0
		j.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the journal did not write its records without being closed")
		}
	}
}

// TestJournalWritesWithoutMoreRecords: records gathered for a batch reach
// the file without a later record or Close, so that a build killed during
// a long action keeps what finished before it.
func TestJournalWritesWithoutMoreRecords(t *testing.T) {
	base := t.TempDir()
	j, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	k := cache.FromBytes([]byte("k"))
	j.record("hepbuild-out/a", k, "fp", cache.FromBytes([]byte("a")), outputFile(t, t.TempDir(), "a", "a"))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		j2, err := OpenJournal(base)
		if err != nil {
			t.Fatal(err)
		}
		if rec, ok := j2.output("hepbuild-out/a"); ok && rec.Key == k {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a record is not on file 20 s after it was made")
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestJournalKeyMemos: ForgetAll keeps what each record said of its key,
// for its fingerprint only, across reopening and compaction; a memo
// vouches for no file, and a new record of its path replaces it.
func TestJournalKeyMemos(t *testing.T) {
	base := t.TempDir()
	files := t.TempDir()
	fp := strings.Repeat("f", 64)
	ka, kb := cache.FromBytes([]byte("ka")), cache.FromBytes([]byte("kb"))
	j, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	j.record("hepbuild-out/a", ka, fp, cache.FromBytes([]byte("a")), outputFile(t, files, "a", "a"))
	j.record("hepbuild-out/b", kb, fp, cache.FromBytes([]byte("b")), outputFile(t, files, "b", "b"))
	j.record("hepbuild-out/c", kb, "", cache.FromBytes([]byte("c")), outputFile(t, files, "c", "c")) // no fingerprint: no memo
	if err := j.ForgetAll(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(j *Journal, path string, want cache.Digest, wantOK bool) {
		t.Helper()
		if _, ok := j.output(path); ok {
			t.Errorf("%s: a record after ForgetAll", path)
		}
		if got, ok := j.recordedKey(path, fp); ok != wantOK || (ok && got != want) {
			t.Errorf("recordedKey(%s) = %v %v, want %v %v", path, got, ok, want, wantOK)
		}
		if _, ok := j.recordedKey(path, strings.Repeat("e", 64)); ok {
			t.Errorf("recordedKey(%s) with another fingerprint matched", path)
		}
	}
	j2, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	check(j2, "hepbuild-out/a", ka, true)
	check(j2, "hepbuild-out/b", kb, true)
	check(j2, "hepbuild-out/c", cache.Digest{}, false)
	// A new record of a replaces its memo; b's stays through compaction.
	j2.record("hepbuild-out/a", kb, fp, cache.FromBytes([]byte("a")), outputFile(t, files, "a", "a"))
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	j3, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := j3.recordedKey("hepbuild-out/a", fp); !ok || got != kb {
		t.Errorf("a: recordedKey = %v %v, want the new record's %v", got, ok, kb)
	}
	if _, ok := j3.keys["hepbuild-out/a"]; ok {
		t.Error("a's memo is still held beside its new record")
	}
	check(j3, "hepbuild-out/b", kb, true)
	// Compacted, the journal keeps a's record and b's memo.
	if err := j3.ForgetAll(); err != nil {
		t.Fatal(err)
	}
	j3.Close()
	b, err := os.ReadFile(filepath.Join(base, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 2 {
		t.Errorf("compacted journal after clean: %d lines, want the memos of a and b:\n%s", len(lines), b)
	}
	// A damaged memo line is no memo.
	if err := os.WriteFile(filepath.Join(base, journalFile), []byte(strings.Replace(string(b), "fff\t", "ffe\t", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	j4, err := OpenJournal(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(j4.keys) != 1 {
		t.Errorf("%d memos loaded from a journal with one damaged, want 1", len(j4.keys))
	}
	j4.Close()
}

// recordLine is the journal line of an output record written the plain
// way, against which TestAppendRecordLineIsRecordLine checks appendRecordLine.
func recordLine(path string, o outputRecord) string {
	if o.Remote {
		x := "0"
		if o.Executable {
			x = "1"
		}
		return checksummed("r\t" + quotePath(path) + "\t" + o.Key.String() + "\t" + o.Digest.String() + "\t" + x + "\t" + o.Fingerprint)
	}
	line := "o\t" + quotePath(path) + "\t" + o.Key.String() + "\t" + o.Digest.String() + "\t" +
		strconv.FormatInt(o.Size, 10) + "\t" + strconv.FormatInt(o.MTime, 10) + "\t" + strconv.FormatUint(o.Inode, 10)
	line += "\t" + o.Fingerprint + "\t" + strconv.FormatInt(o.CTime, 10)
	return checksummed(line)
}

func checksummed(body string) string {
	return body + "\t" + strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(body))), 16) + "\n"
}
