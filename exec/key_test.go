package exec

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/graph"
)

// fakeInputs is an in-memory file system: path → content and exec bit.
type fakeInputs struct {
	files map[string]fakeFile
	dirs  map[string]bool
}

type fakeFile struct {
	content    string
	executable bool
}

func (f *fakeInputs) Digest(a Artifact) (cache.Digest, bool, error) {
	ff, ok := f.files[a.Path]
	if !ok {
		return cache.Digest{}, false, fmt.Errorf("%s does not exist", a.Path)
	}
	return cache.FromBytes([]byte(ff.content)), ff.executable, nil
}

func (f *fakeInputs) ListDir(a Artifact) ([]FileEntry, error) {
	if !f.dirs[a.Path] {
		return nil, fmt.Errorf("%s is not a folder", a.Path)
	}
	var out []FileEntry
	for p, ff := range f.files {
		if rel, ok := strings.CutPrefix(p, a.Path+"/"); ok {
			out = append(out, FileEntry{Path: rel, Digest: cache.FromBytes([]byte(ff.content)), Executable: ff.executable})
		}
	}
	return out, nil
}

func (f *fakeInputs) clone() *fakeInputs {
	c := &fakeInputs{files: map[string]fakeFile{}, dirs: map[string]bool{}}
	for k, v := range f.files {
		c.files[k] = v
	}
	for k, v := range f.dirs {
		c.dirs[k] = v
	}
	return c
}

func testInputs() *fakeInputs {
	return &fakeInputs{
		files: map[string]fakeFile{
			"tools/hist":                            {"#!/bin/sh\necho hist\n", true},
			"analysis/binning.json":                 {`{"bins": 10}`, false},
			"hepbuild-out/analysis/select_tth.root": {"root bytes", false},
			"data/ntuples/a.root":                   {"a", false},
			"data/ntuples/sub/b.root":               {"b", false},
			"envs/setup.sh":                         {"source /cvmfs/x", false},
			"envs/requirements.txt":                 {"numpy==2.0", false},
		},
		dirs: map[string]bool{"data/ntuples": true},
	}
}

// testAction sets every field to a non-zero value, so that each mutation
// below is a real change.
func testAction() *Action {
	return &Action{
		Owner:    graph.MustParseLabel("//analysis:hist_tth"),
		Mnemonic: "Task",
		Progress: "Histogramming tth",
		Kind:     KindRun,
		Argv:     []string{"tools/hist", "--binning", "analysis/binning.json", "-o", "hepbuild-out/analysis/hist_tth.root"},
		Env:      map[string]string{"OMP_NUM_THREADS": "1", "LANG": "C"},
		Inputs: []Artifact{
			{Path: "analysis/binning.json", Source: true},
			{Path: "data/ntuples", Source: true, Dir: true},
			{Path: "hepbuild-out/analysis/select_tth.root"},
			{Path: "tools/hist", Source: true},
		},
		Outputs:    []Artifact{{Path: "hepbuild-out/analysis/hist_tth.root"}, {Path: "hepbuild-out/analysis/plots", Dir: true}},
		Executable: true,
		Environment: &Environment{
			Label:  graph.MustParseLabel("//envs:py311"),
			Kind:   "venv",
			Params: map[string]string{"python": "3.11", "key": "lcg-105"},
			Files:  []Artifact{{Path: "envs/requirements.txt", Source: true}, {Path: "envs/setup.sh", Source: true}},
		},
		Pos: graph.Pos{File: "analysis/BUILD", Line: 12, Col: 5},
		Extra: &Extra{
			Tools:     []Artifact{{Path: "tools/hist", Source: true}},
			Content:   []byte("unused by run actions, hashed anyway"),
			Resources: Resources{CPU: 2, Memory: 4 << 30, Walltime: time.Hour},
			Tags:      []string{"requires-network", "no-remote"},
			Retries:   2,
			Timeout:   30 * time.Minute,
		},
	}
}

func mustFingerprint(t *testing.T, a *Action, in Inputs) string {
	t.Helper()
	fp, err := fingerprint(a, in)
	if err != nil {
		t.Fatalf("fingerprint: %v", err)
	}
	return fp
}

func mustKey(t *testing.T, a *Action, in Inputs) *Key {
	t.Helper()
	k, err := ComputeKey(a, in)
	if err != nil {
		t.Fatalf("ComputeKey: %v", err)
	}
	return k
}

// TestKeyFieldsAccounted fails when a field of Action (or of a struct type a
// hashed field holds) is neither hashed nor excluded with a reason. Adding a
// field to Action without deciding whether it changes outputs breaks this test.
func TestKeyFieldsAccounted(t *testing.T) {
	seenTypes := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	var fields []string
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() != reflect.TypeOf(Action{}).PkgPath() || seenTypes[typ] {
			return
		}
		seenTypes[typ] = true
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name := typ.Name() + "." + f.Name
			fields = append(fields, name)
			hashed, isHashed := keyHashed[name]
			excluded, isExcluded := keyExcluded[name]
			switch {
			case isHashed && isExcluded:
				t.Errorf("%s is both hashed and excluded", name)
			case !isHashed && !isExcluded:
				t.Errorf("%s is neither hashed (keyHashed) nor excluded with a reason (keyExcluded): decide whether it can change an action's outputs", name)
			case isHashed && hashed == "":
				t.Errorf("%s: keyHashed must say where it is hashed", name)
			case isExcluded && len(excluded) < 20:
				t.Errorf("%s: keyExcluded must give a real reason, got %q", name, excluded)
			case isHashed:
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(Action{}))

	// Stale entries hide mistakes: every entry must name a field walked above.
	for _, m := range []map[string]string{keyHashed, keyExcluded} {
		for name := range m {
			if !contains(fields, name) {
				t.Errorf("%s is listed but is not a reachable field", name)
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestRemoteFileIdentity: the fetch key follows the checksum, and the
// modification time only where the storage keeps no checksum.
// TestKeyExtraNilIsZero: an action without extra fields keys the same
// whether Extra is nil or points to zero fields, so that analysis may leave
// it nil and keys stay those of actions that had the fields inline.
func TestKeyExtraNilIsZero(t *testing.T) {
	in := testInputs()
	a := &Action{Kind: KindRun, Argv: []string{"/bin/true"}, Inputs: []Artifact{{Path: "analysis/binning.json", Source: true}},
		Outputs: []Artifact{{Path: "hepbuild-out/analysis/x"}}}
	b := *a
	b.Extra = &Extra{}
	if ka, kb := mustKey(t, a, in), mustKey(t, &b, in); ka.Digest != kb.Digest {
		t.Errorf("key with Extra nil %v, with zero Extra %v: want the same", ka.Digest, kb.Digest)
	}
	if fa, fb := mustFingerprint(t, a, in), mustFingerprint(t, &b, in); fa != fb {
		t.Errorf("fingerprint with Extra nil %q, with zero Extra %q: want the same", fa, fb)
	}
}

func TestRemoteFileIdentity(t *testing.T) {
	keyOf := func(f RemoteFile) cache.Digest {
		a := &Action{Kind: KindFetch, Extra: &Extra{Remote: &f}, Outputs: []Artifact{{Path: "hepbuild-out/data/a.root"}}}
		return mustKey(t, a, testInputs()).Digest
	}
	withSum := RemoteFile{URL: "root://eos.example//store/a.root", Size: 10, Checksum: "adler32:0000000a", ModTime: 1}
	for _, c := range []struct {
		name    string
		mutate  func(f *RemoteFile)
		changes bool
	}{
		{"url", func(f *RemoteFile) { f.URL += "2" }, true},
		{"size", func(f *RemoteFile) { f.Size++ }, true},
		{"checksum", func(f *RemoteFile) { f.Checksum = "adler32:0000000b" }, true},
		{"mtime with a checksum", func(f *RemoteFile) { f.ModTime++ }, false},
		{"checksum lost", func(f *RemoteFile) { f.Checksum = "" }, true},
	} {
		f := withSum
		c.mutate(&f)
		if got := keyOf(f) != keyOf(withSum); got != c.changes {
			t.Errorf("%s: key changed = %v, want %v", c.name, got, c.changes)
		}
	}
	noSum := RemoteFile{URL: "https://dav.example/a.root", Size: 10, ModTime: 1}
	later := noSum
	later.ModTime++
	if keyOf(noSum) == keyOf(later) {
		t.Error("without a checksum, a new modification time must change the key")
	}
}

// TestKeyMutations changes one thing at a time and checks that the key
// changes exactly when the thing is hashed. Every field named in keyHashed and
// keyExcluded needs at least one case, so the table cannot fall behind.
func TestKeyMutations(t *testing.T) {
	type mutation struct {
		field   string // "Type.Field" from keyHashed/keyExcluded, or "" for a nested value
		name    string
		mutate  func(a *Action, in *fakeInputs)
		changes bool
	}
	cases := []mutation{
		{"Action.Kind", "kind", func(a *Action, _ *fakeInputs) { a.Kind = KindSymlink }, true},
		{"Action.Argv", "argument changed", func(a *Action, _ *fakeInputs) { a.Argv[2] = "other.json" }, true},
		{"Action.Argv", "argument added", func(a *Action, _ *fakeInputs) { a.Argv = append(a.Argv, "-v") }, true},
		{"Action.Argv", "arguments swapped", func(a *Action, _ *fakeInputs) { a.Argv[1], a.Argv[2] = a.Argv[2], a.Argv[1] }, true},
		{"Action.Argv", "argument split differently", func(a *Action, _ *fakeInputs) {
			a.Argv = append(a.Argv[:1], append([]string{"--binning analysis/binning.json"}, a.Argv[3:]...)...)
		}, true},
		{"Action.Env", "env var value", func(a *Action, _ *fakeInputs) { a.Env["OMP_NUM_THREADS"] = "2" }, true},
		{"Action.Env", "env var added", func(a *Action, _ *fakeInputs) { a.Env["X"] = "" }, true},
		{"Action.Env", "env var renamed", func(a *Action, _ *fakeInputs) { a.Env["LC_ALL"] = a.Env["LANG"]; delete(a.Env, "LANG") }, true},
		{"Action.Inputs", "input added", func(a *Action, in *fakeInputs) {
			in.files["analysis/extra.txt"] = fakeFile{"x", false}
			a.Inputs = append(a.Inputs, Artifact{Path: "analysis/extra.txt"})
		}, true},
		{"Action.Inputs", "input removed", func(a *Action, _ *fakeInputs) { a.Inputs = a.Inputs[:len(a.Inputs)-2] }, true},
		{"", "input content digest", func(_ *Action, in *fakeInputs) {
			in.files["analysis/binning.json"] = fakeFile{`{"bins": 20}`, false}
		}, true},
		{"", "input executable bit", func(_ *Action, in *fakeInputs) {
			in.files["analysis/binning.json"] = fakeFile{`{"bins": 10}`, true}
		}, true},
		{"", "file inside a folder input", func(_ *Action, in *fakeInputs) { in.files["data/ntuples/sub/b.root"] = fakeFile{"B", false} }, true},
		{"", "file added to a folder input", func(_ *Action, in *fakeInputs) { in.files["data/ntuples/c.root"] = fakeFile{"c", false} }, true},
		{"Artifact.Path", "input path", func(a *Action, in *fakeInputs) {
			in.files["analysis/binning2.json"] = in.files["analysis/binning.json"]
			a.Inputs[0].Path = "analysis/binning2.json"
		}, true},
		{"Artifact.Path", "input moved to another folder", func(a *Action, in *fakeInputs) {
			in.files["other/binning.json"] = in.files["analysis/binning.json"]
			a.Inputs[0].Path = "other/binning.json"
		}, true},
		{"Artifact.Path", "output path", func(a *Action, _ *fakeInputs) { a.Outputs[0].Path = "hepbuild-out/analysis/h.root" }, true},
		{"Artifact.Dir", "output becomes a folder", func(a *Action, _ *fakeInputs) { a.Outputs[0].Dir = true }, true},
		{"Artifact.Dir", "input folder instead of its file", func(a *Action, in *fakeInputs) {
			// data/ntuples/a.root alone versus the whole folder.
			a.Inputs[1] = Artifact{Path: "data/ntuples/a.root"}
		}, true},
		{"Artifact.Source", "input source flag", func(a *Action, _ *fakeInputs) { a.Inputs[0].Source = false }, false},
		{"Artifact.Source", "output source flag", func(a *Action, _ *fakeInputs) { a.Outputs[0].Source = true }, false},
		{"Artifact.Symlink", "output declared a symlink", func(a *Action, _ *fakeInputs) { a.Outputs[0].Symlink = true }, false},
		{"Extra.Tools", "tool not also listed in inputs", func(a *Action, in *fakeInputs) {
			in.files["tools/fit"] = fakeFile{"fit", true}
			a.SetExtra().Tools = append(a.Extras().Tools, Artifact{Path: "tools/fit"})
		}, true},
		{"Extra.Tools", "tool content", func(_ *Action, in *fakeInputs) { in.files["tools/hist"] = fakeFile{"v2", true} }, true},
		{"Action.Outputs", "output added", func(a *Action, _ *fakeInputs) {
			a.Outputs = append(a.Outputs, Artifact{Path: "hepbuild-out/analysis/log.txt"})
		}, true},
		{"Extra.Content", "content", func(a *Action, _ *fakeInputs) { a.SetExtra().Content = []byte("other") }, true},
		{"Action.Extra", "none of the extra fields", func(a *Action, _ *fakeInputs) { a.Extra = nil }, true},
		{"Action.Executable", "executable", func(a *Action, _ *fakeInputs) { a.Executable = false }, true},
		{"Action.Environment", "host environment", func(a *Action, _ *fakeInputs) { a.Environment = nil }, true},
		{"Environment.Kind", "environment kind", func(a *Action, _ *fakeInputs) { a.Environment.Kind = "conda" }, true},
		{"Environment.Params", "environment param value", func(a *Action, _ *fakeInputs) { a.Environment.Params["key"] = "lcg-106" }, true},
		{"Environment.Params", "environment param added", func(a *Action, _ *fakeInputs) { a.Environment.Params["arch"] = "el9" }, true},
		{"Environment.Files", "environment file dropped", func(a *Action, _ *fakeInputs) { a.Environment.Files = a.Environment.Files[:1] }, true},
		{"", "environment file content", func(_ *Action, in *fakeInputs) { in.files["envs/setup.sh"] = fakeFile{"source /cvmfs/y", false} }, true},
		{"", "environment file executable bit", func(_ *Action, in *fakeInputs) { in.files["envs/setup.sh"] = fakeFile{"source /cvmfs/x", true} }, true},
		{"Environment.Label", "environment label", func(a *Action, _ *fakeInputs) { a.Environment.Label = graph.MustParseLabel("//envs:other") }, false},
		{"Extra.Tags", "no-cache (whether cached, not what)", func(a *Action, _ *fakeInputs) { a.SetExtra().Tags = append(a.Extras().Tags, "no-cache") }, false},
		{"Extra.Tags", "manual (a label for patterns)", func(a *Action, _ *fakeInputs) { a.SetExtra().Tags = append(a.Extras().Tags, "manual") }, false},
		{"Extra.Tags", "slow (a free-form label)", func(a *Action, _ *fakeInputs) { a.SetExtra().Tags = append(a.Extras().Tags, "slow") }, false},
		{"Extra.Tags", "requires-network dropped", func(a *Action, _ *fakeInputs) { a.SetExtra().Tags = []string{"no-remote"} }, true},
		{"Extra.Tags", "no-sandbox", func(a *Action, _ *fakeInputs) { a.SetExtra().Tags = append(a.Extras().Tags, "no-sandbox") }, true},
		{"Extra.Tags", "local (where, not what)", func(a *Action, _ *fakeInputs) { a.SetExtra().Tags = append(a.Extras().Tags, "local") }, false},
		{"Extra.Tags", "duplicate tag", func(a *Action, _ *fakeInputs) { a.SetExtra().Tags = append(a.Extras().Tags, "requires-network") }, false},
		{"Extra.Timeout", "timeout", func(a *Action, _ *fakeInputs) { a.SetExtra().Timeout = time.Hour }, true},
		{"Extra.SandboxExpose", "exposed path", func(a *Action, _ *fakeInputs) { a.SetExtra().SandboxExpose = []string{"/opt/data"} }, true},
		{"Extra.Remote", "fetch of a remote file", func(a *Action, _ *fakeInputs) {
			a.SetExtra().Remote = &RemoteFile{URL: "root://eos.example//store/a.root", Size: 10, Checksum: "adler32:0000000a"}
		}, true},
		{"RemoteFile.URL", "remote file URL", func(a *Action, _ *fakeInputs) {
			a.SetExtra().Remote = &RemoteFile{URL: "root://eos.example//store/b.root", Size: 10, Checksum: "adler32:0000000a"}
		}, true},
		{"RemoteFile.Size", "remote file size", func(a *Action, _ *fakeInputs) { a.SetExtra().Remote = &RemoteFile{URL: "u", Size: 11} }, true},
		{"RemoteFile.Checksum", "remote file checksum", func(a *Action, _ *fakeInputs) { a.SetExtra().Remote = &RemoteFile{URL: "u", Checksum: "adler32:1"} }, true},
		{"RemoteFile.ModTime", "remote file mtime", func(a *Action, _ *fakeInputs) { a.SetExtra().Remote = &RemoteFile{URL: "u", ModTime: 7} }, true},
		{"Artifact.URL", "streamed input's URL alone", func(a *Action, _ *fakeInputs) { a.Inputs[0].URL = "root://eos.example//x" }, false},
		{"Action.Owner", "owner", func(a *Action, _ *fakeInputs) { a.Owner = graph.MustParseLabel("//other:t") }, false},
		{"Action.Mnemonic", "mnemonic", func(a *Action, _ *fakeInputs) { a.Mnemonic = "Histogram" }, false},
		{"Action.Progress", "progress", func(a *Action, _ *fakeInputs) { a.Progress = "other" }, false},
		{"Action.Pos", "position", func(a *Action, _ *fakeInputs) { a.Pos.Line = 99 }, false},
		{"Extra.Retries", "retries", func(a *Action, _ *fakeInputs) { a.SetExtra().Retries = 5 }, false},
		{"Extra.Resources", "resources", func(a *Action, _ *fakeInputs) {
			a.SetExtra().Resources = Resources{CPU: 8, Memory: 1 << 30, Walltime: time.Minute}
		}, false},
	}

	base := mustKey(t, testAction(), testInputs())
	baseFP := mustFingerprint(t, testAction(), testInputs())
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.field] = true
		t.Run(c.name, func(t *testing.T) {
			a, in := testAction(), testInputs()
			c.mutate(a, in)
			k := mustKey(t, a, in)
			if got := k.Digest != base.Digest; got != c.changes {
				t.Errorf("key changed = %v, want %v (%s)", got, c.changes, c.field)
			}
			// The journal trusts a recorded key when the fingerprint is
			// unchanged: a change of the key must change the fingerprint.
			if k.Digest != base.Digest && mustFingerprint(t, a, in) == baseFP {
				t.Errorf("key changed but the fingerprint did not (%s)", c.field)
			}
		})
	}
	for _, m := range []map[string]string{keyHashed, keyExcluded} {
		for name := range m {
			if !covered[name] {
				t.Errorf("no mutation case for %s", name)
			}
		}
	}
}

// TestKeyTagsFollowTheTable: each known tag changes the key exactly when
// Tags says it enters the key; an unknown tag never does. A tag that does
// not change the key does not change the fingerprint either, so tagging a
// target for a query does not even cost the key's computation next time.
func TestKeyTagsFollowTheTable(t *testing.T) {
	untagged := func() *Action {
		a := testAction()
		a.SetExtra().Tags = nil
		return a
	}
	base := mustKey(t, untagged(), testInputs())
	baseFP := mustFingerprint(t, untagged(), testInputs())
	check := func(tag string, want bool) {
		t.Helper()
		a := untagged()
		a.SetExtra().Tags = []string{tag}
		k := mustKey(t, a, testInputs())
		if got := k.Digest != base.Digest; got != want {
			t.Errorf("tag %q: key changed = %v, want %v", tag, got, want)
		}
		if fpChanged := mustFingerprint(t, a, testInputs()) != baseFP; fpChanged != want {
			t.Errorf("tag %q: fingerprint changed = %v, want %v", tag, fpChanged, want)
		}
	}
	inKey := 0
	for _, tag := range Tags {
		check(tag.Name, tag.InKey)
		if tag.InKey {
			inKey++
		}
		if tag.Effect == "" || tag.Why == "" {
			t.Errorf("tag %q: Tags needs its effect and why it is or is not in the key", tag.Name)
		}
	}
	if inKey == 0 || inKey == len(Tags) {
		t.Errorf("%d of %d known tags enter the key: the table cannot tell them apart", inKey, len(Tags))
	}
	for _, tag := range []string{"slow", "team:higgs", "no-such-requirement", "Manual", "requires-network "} {
		if _, ok := LookupTag(tag); ok {
			t.Fatalf("%q is a known tag", tag)
		}
		check(tag, false)
	}
}

// TestKeyDeterministic builds the same action with every unordered
// collection in a different order and expects one key.
func TestKeyDeterministic(t *testing.T) {
	want := mustKey(t, testAction(), testInputs())
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		a := testAction()
		shuffle := func(xs []Artifact) { rng.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] }) }
		shuffle(a.Inputs)
		shuffle(a.Outputs)
		shuffle(a.Environment.Files)
		tags := a.Extra.Tags
		rng.Shuffle(len(tags), func(i, j int) { tags[i], tags[j] = tags[j], tags[i] })
		// Maps built by inserting in a different order.
		env := map[string]string{}
		keys := []string{"LANG", "OMP_NUM_THREADS"}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		for _, k := range keys {
			env[k] = a.Env[k]
		}
		a.Env = env
		got := mustKey(t, a, testInputs())
		if got.Digest != want.Digest {
			t.Fatalf("round %d: key %s, want %s", i, got.Digest, want.Digest)
		}
		if diff := cmp.Diff(want.Blobs, got.Blobs); diff != "" {
			t.Fatalf("round %d: blobs mismatch (-want +got):\n%s", i, diff)
		}
	}
}

// TestKeyMessages checks the REAPI messages themselves: what a remote
// executor would receive.
func TestKeyMessages(t *testing.T) {
	a := testAction()
	k := mustKey(t, a, testInputs())

	if got := cache.FromBytes(k.Blobs[k.Digest]); got != k.Digest {
		t.Fatalf("Blobs[Digest] hashes to %s, want %s", got, k.Digest)
	}
	var act repb.Action
	if err := proto.Unmarshal(k.Blobs[k.Digest], &act); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(k.Action, &act, protocmp.Transform()); diff != "" {
		t.Errorf("action mismatch (-want +got):\n%s", diff)
	}
	var cmd repb.Command
	if err := proto.Unmarshal(k.Blobs[cache.FromProto(act.CommandDigest)], &cmd); err != nil {
		t.Fatal(err)
	}
	wantCmd := &repb.Command{
		Arguments: a.Argv,
		EnvironmentVariables: []*repb.Command_EnvironmentVariable{
			{Name: "LANG", Value: "C"}, {Name: "OMP_NUM_THREADS", Value: "1"},
		},
		OutputFiles:       []string{"hepbuild-out/analysis/hist_tth.root"},
		OutputDirectories: []string{"hepbuild-out/analysis/plots"},
		OutputPaths:       []string{"hepbuild-out/analysis/hist_tth.root", "hepbuild-out/analysis/plots"},
		Platform:          k.Command.Platform,
	}
	if diff := cmp.Diff(wantCmd, &cmd, protocmp.Transform()); diff != "" {
		t.Errorf("command mismatch (-want +got):\n%s", diff)
	}
	var props []string
	for _, p := range cmd.Platform.Properties {
		props = append(props, p.Name)
	}
	wantProps := []string{"ISA", "OSFamily", PropKind, PropEnvironment, PropKeyVersion, PropTags, PropContent, PropExecutable}
	if diff := cmp.Diff(wantProps, props); diff != "" {
		t.Errorf("platform property names mismatch (-want +got):\n%s", diff)
	}
	if act.Timeout.AsDuration() != a.Extras().Timeout || act.DoNotCache {
		t.Errorf("timeout %v do_not_cache %v, want %v false", act.Timeout.AsDuration(), act.DoNotCache, a.Extras().Timeout)
	}

	// Walk the input tree back into a flat list of files.
	got := map[string]string{}
	var walk func(prefix string, d cache.Digest)
	walk = func(prefix string, d cache.Digest) {
		b, ok := k.Blobs[d]
		if !ok {
			t.Fatalf("directory %s (%q) missing from Blobs", d, prefix)
		}
		var dir repb.Directory
		if err := proto.Unmarshal(b, &dir); err != nil {
			t.Fatal(err)
		}
		for _, f := range dir.Files {
			got[prefix+f.Name] = fmt.Sprintf("%s x=%v", cache.FromProto(f.Digest), f.IsExecutable)
		}
		for _, sub := range dir.Directories {
			walk(prefix+sub.Name+"/", cache.FromProto(sub.Digest))
		}
	}
	walk("", cache.FromProto(act.InputRootDigest))
	in := testInputs()
	want := map[string]string{}
	for _, p := range []string{"analysis/binning.json", "data/ntuples/a.root", "data/ntuples/sub/b.root",
		"hepbuild-out/analysis/select_tth.root", "tools/hist"} {
		want[p] = fmt.Sprintf("%s x=%v", cache.FromBytes([]byte(in.files[p].content)), in.files[p].executable)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("input tree mismatch (-want +got):\n%s", diff)
	}
}

func TestKeyWriteAndSymlink(t *testing.T) {
	in := testInputs()
	write := func(content string, x bool, out string) *Action {
		return &Action{Kind: KindWrite, Extra: &Extra{Content: []byte(content)}, Executable: x, Outputs: []Artifact{{Path: out}}}
	}
	link := func(src, out string) *Action {
		return &Action{Kind: KindSymlink, Inputs: []Artifact{{Path: src}}, Outputs: []Artifact{{Path: out}}}
	}
	keys := map[string]cache.Digest{}
	for name, a := range map[string]*Action{
		"write":                      write("hello", false, "hepbuild-out/p/a.txt"),
		"write other content":        write("hello!", false, "hepbuild-out/p/a.txt"),
		"write empty":                write("", false, "hepbuild-out/p/a.txt"),
		"write executable":           write("hello", true, "hepbuild-out/p/a.txt"),
		"write other output":         write("hello", false, "hepbuild-out/p/b.txt"),
		"symlink":                    link("analysis/binning.json", "hepbuild-out/p/a.txt"),
		"symlink other input":        link("tools/hist", "hepbuild-out/p/a.txt"),
		"symlink other output":       link("analysis/binning.json", "hepbuild-out/p/b.txt"),
		"run with no inputs":         {Kind: KindRun, Outputs: []Artifact{{Path: "hepbuild-out/p/a.txt"}}},
		"run writing the same bytes": {Kind: KindRun, Argv: []string{"sh", "-c", "echo hello > $1"}, Outputs: []Artifact{{Path: "hepbuild-out/p/a.txt"}}},
	} {
		k := mustKey(t, a, in)
		for other, d := range keys {
			if d == k.Digest {
				t.Errorf("%s and %s have the same key", name, other)
			}
		}
		keys[name] = k.Digest
	}

	// The symlink key follows its input's content.
	a := link("analysis/binning.json", "hepbuild-out/p/a.txt")
	in2 := in.clone()
	in2.files["analysis/binning.json"] = fakeFile{"changed", false}
	if mustKey(t, a, in).Digest == mustKey(t, a, in2).Digest {
		t.Error("symlink key ignores its input's content")
	}
}

func TestKeyErrors(t *testing.T) {
	in := testInputs()
	for _, c := range []struct {
		name string
		a    *Action
		want string
	}{
		{"missing input", &Action{Inputs: []Artifact{{Path: "nope"}}}, "nope does not exist"},
		{"absolute input", &Action{Inputs: []Artifact{{Path: "/etc/passwd"}}}, "relative"},
		{"input escapes", &Action{Inputs: []Artifact{{Path: "../x"}}}, "leaves the exec root"},
		{"unclean output", &Action{Outputs: []Artifact{{Path: "a//b"}}}, "not clean"},
		{"output twice", &Action{Outputs: []Artifact{{Path: "a"}, {Path: "a"}}}, "declared twice"},
		{"file and folder", &Action{Inputs: []Artifact{{Path: "tools/hist"}, {Path: "tools/hist/x"}}}, "both a file and a folder"},
		{"missing environment file", &Action{Environment: &Environment{Kind: "shell", Files: []Artifact{{Path: "envs/nope.sh"}}}}, "envs/nope.sh"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "file and folder" {
				in = in.clone()
				in.files["tools/hist/x"] = fakeFile{"x", false}
			}
			_, err := ComputeKey(c.a, in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}

	// An Inputs that cannot list folders gets a clear error, not a wrong key.
	_, err := ComputeKey(&Action{Inputs: []Artifact{{Path: "data/ntuples", Dir: true}}}, filesOnly{in})
	if err == nil || !strings.Contains(err.Error(), "DirInputs") {
		t.Errorf("folder input with a files-only Inputs: error %v, want one naming DirInputs", err)
	}
}

type filesOnly struct{ in *fakeInputs }

func (f filesOnly) Digest(a Artifact) (cache.Digest, bool, error) { return f.in.Digest(a) }

func BenchmarkComputeKey(b *testing.B) {
	in := &fakeInputs{files: map[string]fakeFile{}, dirs: map[string]bool{}}
	a := testAction()
	a.Inputs = nil
	for i := 0; i < 1000; i++ {
		p := fmt.Sprintf("data/d%02d/f%04d.root", i%30, i)
		in.files[p] = fakeFile{p, false}
		a.Inputs = append(a.Inputs, Artifact{Path: p})
	}
	in.files["envs/setup.sh"] = fakeFile{"x", false}
	in.files["envs/requirements.txt"] = fakeFile{"y", false}
	in.files["tools/hist"] = fakeFile{"z", true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ComputeKey(a, in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHostEnvironmentDigest: the host's digest, made once, is the zero
// Environment's, made each time.
func TestHostEnvironmentDigest(t *testing.T) {
	host, err := EnvironmentDigest(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	zero, err := EnvironmentDigest(&Environment{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != zero || host.IsZero() {
		t.Errorf("host environment %v, zero Environment %v: want the same digest", host, zero)
	}
}
