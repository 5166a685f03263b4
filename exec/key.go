package exec

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hepbuild/hepbuild/cache"
)

// KeyVersion salts every action key. Bump it when the key computation or the
// meaning of a cached result changes, so old cache entries are never reused.
const KeyVersion = "hepbuild-key-v1"

// Platform property names that hepbuild puts into every Command. A remote
// executor must be configured to accept them (as Bazel's cache-silo-key is).
const (
	PropKeyVersion  = "hepbuild-key-version"
	PropEnvironment = "hepbuild-environment" // digest of the software environment
	PropKind        = "hepbuild-action-kind" // run, write, symlink
	PropOS          = "OSFamily"
	PropISA         = "ISA"
	PropTags        = "hepbuild-tags"             // execution requirements that can change outputs
	PropContent     = "hepbuild-write-content"    // digest of a write action's content
	PropExecutable  = "hepbuild-write-executable" // "true" when a write action's output is executable
	PropExpose      = "hepbuild-sandbox-expose"   // host paths the sandbox shows (--sandbox-expose), quoted, comma-separated
	PropRemoteFile  = "hepbuild-remote-file"      // what a fetch action downloads: URL, size, checksum (RemoteFile.Identity)
)

// Key is an action's identity, and the REAPI messages it was computed from.
type Key struct {
	// Digest is the digest of the serialized Action message: the action cache key.
	Digest  cache.Digest
	Action  *repb.Action
	Command *repb.Command
	// Blobs holds every serialized message (Action, Command, input Directories)
	// by digest, for upload to a remote cache or executor.
	Blobs map[cache.Digest][]byte
	// InputRoot is the digest of the input root Directory (also Action.InputRootDigest).
	InputRoot cache.Digest
	// Environment is the digest of the software environment (see EnvironmentDigest).
	Environment cache.Digest

	// fingerprint is the action's fingerprint the runner found the key
	// for, recorded with the outputs in the journal.
	fingerprint string
	// partial says that only Digest, Environment and fingerprint are set:
	// the key the journal recorded for this fingerprint, enough to look
	// the action up and restore it (see Runner.plan). Runner.completeKey
	// computes the rest before anything else needs it.
	partial bool
}

// Inputs gives the digest and executable bit of an input artifact.
type Inputs interface {
	Digest(a Artifact) (d cache.Digest, executable bool, err error)
}

// FileEntry is one file below a folder input.
type FileEntry struct {
	// Path is relative to the folder, slash-separated, e.g. "sub/x.root".
	Path       string
	Digest     cache.Digest
	Executable bool
}

// DirInputs is an Inputs that can also expand a folder input (Artifact.Dir).
// ComputeKey uses it when an action reads a folder; an Inputs without it can
// only key actions whose inputs are all files.
type DirInputs interface {
	Inputs
	// ListDir returns every regular file below the folder, in any order.
	// Empty sub-folders are not represented.
	ListDir(a Artifact) ([]FileEntry, error)
}

// keyHashed says where each field that enters the key goes, by "Type.Field".
// key_test.go walks Action by reflection (and the struct types of hashed
// fields) and fails on a field that is in neither keyHashed nor keyExcluded.
var keyHashed = map[string]string{
	"Action.Kind":         "platform property " + PropKind,
	"Action.Extra":        "each of its fields, below",
	"Action.Argv":         "Command.arguments",
	"Action.Env":          "Command.environment_variables, sorted by name",
	"Action.Inputs":       "input root Merkle tree",
	"Extra.Tools":         "input root Merkle tree (merged with Inputs)",
	"Action.Outputs":      "Command.output_paths, output_files and output_directories",
	"Extra.Content":       "platform property " + PropContent,
	"Action.Executable":   "platform property " + PropExecutable,
	"Action.Environment":  "platform property " + PropEnvironment,
	"Extra.Tags":          "platform property " + PropTags + ", the known tags that can change outputs (Tags, InKey)",
	"Extra.Timeout":       "Action.timeout",
	"Extra.SandboxExpose": "platform property " + PropExpose,
	"Extra.Remote":        "platform property " + PropRemoteFile + " (RemoteFile.Identity)",
	"RemoteFile.URL":      "platform property " + PropRemoteFile,
	"RemoteFile.Size":     "platform property " + PropRemoteFile,
	"RemoteFile.Checksum": "platform property " + PropRemoteFile,
	"RemoteFile.ModTime":  "platform property " + PropRemoteFile + ", only when the storage keeps no checksum",
	"Artifact.Path":       "input root node names, output paths, environment file names",
	"Artifact.Dir":        "inputs: the folder is expanded into the tree; outputs: output_directories",
	"Environment.Kind":    "environment digest",
	"Environment.Params":  "environment digest",
	"Environment.Files":   "environment digest (path, content digest and executable bit)",
}

// keyExcluded lists the fields that do not enter the key, each with the
// reason why leaving it out can never make a wrong cache hit.
var keyExcluded = map[string]string{
	"Action.Owner":    "the same command on the same inputs makes the same outputs, whichever target asked for it",
	"Action.Mnemonic": "a display name; what runs is Argv/Content and Kind",
	"Action.Progress": "a display message; it does not reach the process",
	"Action.Pos":      "where the target was declared only locates error messages",
	"Extra.Retries":   "retries happen only after failures, and failed runs are never cached",
	"Extra.Resources": "cpu, memory, tmp and walltime bound scheduling and kill runs that exceed them; " +
		"a run that succeeds within them writes the same outputs, and failed runs are never cached",
	"Artifact.Symlink": "it says which links an action may write, not what it writes; an input link " +
		"enters the key by its target (the digest of the link), and a restored result is checked against it",
	"Artifact.Source": "sources and generated files are told apart by their path (hepbuild-out/...), " +
		"and an input enters the key by its content, whoever made it",
	"Artifact.URL": "a streamed remote file enters its readers' keys by its identity file at Path (URL, size, " +
		"checksum), whose content is in the input tree; the URL alone says nothing of the content",
	"Environment.Label": "an environment is identified by what it is (kind, params, files), " +
		"not by the name of the target declaring it: two names for one stack share results",
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// ComputeKey returns the key of an action whose inputs all exist. It builds
// the REAPI Command, input root Directory tree and Action exactly as a
// Bazel-compatible remote executor would receive them, so the key and blobs
// can be shared with such caches.
//
// Every Action field enters the key except those in keyExcluded; see
// key_test.go, which proves it. The key does not depend on the order of
// Inputs, Tools, Outputs, Tags, Env, Environment.Params or Environment.Files.
func ComputeKey(a *Action, in Inputs) (*Key, error) {
	k := &Key{Blobs: map[cache.Digest][]byte{}}
	add := func(m proto.Message) (cache.Digest, error) {
		b, err := deterministic.Marshal(m)
		if err != nil {
			return cache.Digest{}, err
		}
		d := cache.FromBytes(b)
		k.Blobs[d] = b
		return d, nil
	}

	envDigest, err := EnvironmentDigest(a.Environment, in)
	if err != nil {
		return nil, fmt.Errorf("keying %s: %w", a.Describe(), err)
	}
	k.Environment = envDigest

	root := newDirNode()
	x := a.Extras()
	for _, set := range [][]Artifact{a.Inputs, x.Tools} {
		for _, art := range set {
			if err := addInput(root, art, in); err != nil {
				return nil, fmt.Errorf("keying %s: input %s: %w", a.Describe(), art.Path, err)
			}
		}
	}
	rootDigest, err := root.marshal(add)
	if err != nil {
		return nil, fmt.Errorf("keying %s: %w", a.Describe(), err)
	}
	k.InputRoot = rootDigest

	cmd, err := command(a, envDigest)
	if err != nil {
		return nil, fmt.Errorf("keying %s: %w", a.Describe(), err)
	}
	cmdDigest, err := add(cmd)
	if err != nil {
		return nil, fmt.Errorf("keying %s: %w", a.Describe(), err)
	}
	act := &repb.Action{
		CommandDigest:   cmdDigest.ToProto(),
		InputRootDigest: rootDigest.ToProto(),
		// Not do_not_cache: "no-cache" does not change outputs, so it does
		// not change the key; the runner skips the cache for it.
		Platform: cmd.Platform,
	}
	if x.Timeout > 0 {
		act.Timeout = durationpb.New(x.Timeout)
	}
	if k.Digest, err = add(act); err != nil {
		return nil, fmt.Errorf("keying %s: %w", a.Describe(), err)
	}
	k.Action, k.Command = act, cmd
	return k, nil
}

func command(a *Action, envDigest cache.Digest) (*repb.Command, error) {
	x := a.Extras()
	cmd := &repb.Command{Arguments: append([]string(nil), a.Argv...)}
	names := make([]string, 0, len(a.Env))
	for n := range a.Env {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cmd.EnvironmentVariables = append(cmd.EnvironmentVariables,
			&repb.Command_EnvironmentVariable{Name: n, Value: a.Env[n]})
	}

	seen := map[string]bool{}
	for _, o := range a.Outputs {
		if err := checkPath(o.Path); err != nil {
			return nil, fmt.Errorf("output %q: %w", o.Path, err)
		}
		if seen[o.Path] {
			return nil, fmt.Errorf("output %s declared twice", o.Path)
		}
		seen[o.Path] = true
		cmd.OutputPaths = append(cmd.OutputPaths, o.Path)
		// Servers ignore the deprecated fields when output_paths is set; we
		// fill them because they record which outputs are folders, which
		// changes what a successful run must produce.
		if o.Dir {
			cmd.OutputDirectories = append(cmd.OutputDirectories, o.Path)
		} else {
			cmd.OutputFiles = append(cmd.OutputFiles, o.Path)
		}
	}
	sort.Strings(cmd.OutputPaths)
	sort.Strings(cmd.OutputFiles)
	sort.Strings(cmd.OutputDirectories)

	props := map[string]string{
		PropKeyVersion:  KeyVersion,
		PropEnvironment: envDigest.String(),
		PropKind:        a.Kind.String(),
		PropOS:          runtime.GOOS,
		PropISA:         runtime.GOARCH,
	}
	if a.Kind == KindWrite || len(x.Content) > 0 {
		props[PropContent] = cache.FromBytes(x.Content).String()
	}
	if a.Executable {
		props[PropExecutable] = "true"
	}
	if x.Remote != nil {
		props[PropRemoteFile] = x.Remote.Identity()
	}
	if tags := keyTags(x.Tags); len(tags) > 0 {
		props[PropTags] = strings.Join(tags, ",")
	}
	if len(x.SandboxExpose) > 0 {
		var quoted []string
		for _, p := range x.SandboxExpose {
			quoted = append(quoted, strconv.Quote(p))
		}
		sort.Strings(quoted)
		props[PropExpose] = strings.Join(dedupe(quoted), ",")
	}
	cmd.Platform = platform(props)
	return cmd, nil
}

// platform returns the properties sorted by name, as REAPI requires.
func platform(props map[string]string) *repb.Platform {
	p := &repb.Platform{}
	for n, v := range props {
		p.Properties = append(p.Properties, &repb.Platform_Property{Name: n, Value: v})
	}
	sort.Slice(p.Properties, func(i, j int) bool {
		a, b := p.Properties[i], p.Properties[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Value < b.Value
	})
	return p
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// EnvironmentDigest identifies a software environment by its kind, params and
// the content of its files; nil and the zero Environment are the host.
// The digest is that of a deterministically serialized REAPI Platform message
// holding "kind", "param:NAME" and "file:PATH" properties.
func EnvironmentDigest(e *Environment, in Inputs) (cache.Digest, error) {
	if e == nil {
		return hostEnvironment(), nil
	}
	return environmentDigest(e, in)
}

// hostEnvironment is the digest of the host environment, the same for
// every action without one: made once, not for each of them.
var hostEnvironment = sync.OnceValue(func() cache.Digest {
	d, err := environmentDigest(nil, nil)
	if err != nil {
		panic(err) // a fixed message that always marshals
	}
	return d
})

func environmentDigest(e *Environment, in Inputs) (cache.Digest, error) {
	kind := "host"
	if e != nil && e.Kind != "" {
		kind = e.Kind
	}
	props := map[string]string{"kind": kind}
	if e != nil {
		for n, v := range e.Params {
			props["param:"+n] = v
		}
		files := newDirNode()
		for _, f := range e.Files {
			if err := addInput(files, f, in); err != nil {
				return cache.Digest{}, fmt.Errorf("environment %s: file %s: %w", e.Label, f.Path, err)
			}
		}
		files.walk("", func(p string, f fileNode) {
			props["file:"+p] = fileValue(f)
		})
	}
	b, err := deterministic.Marshal(platform(props))
	if err != nil {
		return cache.Digest{}, err
	}
	return cache.FromBytes(b), nil
}

func fileValue(f fileNode) string {
	return f.digest.String() + " executable=" + strconv.FormatBool(f.executable)
}

// checkPath accepts clean, relative, slash-separated paths without "..".
func checkPath(p string) error {
	switch {
	case p == "" || p == ".":
		return errors.New("empty path")
	case path.IsAbs(p):
		return errors.New("path must be relative to the exec root")
	case path.Clean(p) != p:
		return errors.New("path is not clean")
	case p == ".." || strings.HasPrefix(p, "../"):
		return errors.New("path leaves the exec root")
	}
	return nil
}

type fileNode struct {
	digest     cache.Digest
	executable bool
}

// dirNode is a folder of the input tree under construction.
type dirNode struct {
	files map[string]fileNode
	dirs  map[string]*dirNode
}

func newDirNode() *dirNode {
	return &dirNode{files: map[string]fileNode{}, dirs: map[string]*dirNode{}}
}

func addInput(root *dirNode, art Artifact, in Inputs) error {
	if err := checkPath(art.Path); err != nil {
		return err
	}
	if !art.Dir {
		d, x, err := in.Digest(art)
		if err != nil {
			return err
		}
		return root.addFile(art.Path, fileNode{d, x})
	}
	di, ok := in.(DirInputs)
	if !ok {
		return fmt.Errorf("is a folder, and %T cannot list folders (it does not implement exec.DirInputs)", in)
	}
	entries, err := di.ListDir(art)
	if err != nil {
		return err
	}
	if _, err := root.mkdirAll(art.Path); err != nil {
		return err
	}
	for _, e := range entries {
		if err := checkPath(e.Path); err != nil {
			return fmt.Errorf("file %q: %w", e.Path, err)
		}
		if err := root.addFile(art.Path+"/"+e.Path, fileNode{e.Digest, e.Executable}); err != nil {
			return err
		}
	}
	return nil
}

func (n *dirNode) mkdirAll(p string) (*dirNode, error) {
	for _, name := range strings.Split(p, "/") {
		if _, isFile := n.files[name]; isFile {
			return nil, fmt.Errorf("%s is both a file and a folder", p)
		}
		child, ok := n.dirs[name]
		if !ok {
			child = newDirNode()
			n.dirs[name] = child
		}
		n = child
	}
	return n, nil
}

func (n *dirNode) addFile(p string, f fileNode) error {
	dir, name := path.Split(p)
	parent := n
	if dir != "" {
		var err error
		if parent, err = n.mkdirAll(strings.TrimSuffix(dir, "/")); err != nil {
			return err
		}
	}
	if _, isDir := parent.dirs[name]; isDir {
		return fmt.Errorf("%s is both a file and a folder", p)
	}
	if prev, ok := parent.files[name]; ok && prev != f {
		return fmt.Errorf("%s listed twice with different content (%s and %s)", p, fileValue(prev), fileValue(f))
	}
	parent.files[name] = f
	return nil
}

// walk calls fn for every file below n, in sorted path order.
func (n *dirNode) walk(prefix string, fn func(p string, f fileNode)) {
	for _, name := range sortedKeys(n.files) {
		fn(prefix+name, n.files[name])
	}
	for _, name := range sortedKeys(n.dirs) {
		n.dirs[name].walk(prefix+name+"/", fn)
	}
}

// marshal stores the Directory messages of n and its children and returns
// n's digest. REAPI requires files and folders sorted by name.
func (n *dirNode) marshal(add func(proto.Message) (cache.Digest, error)) (cache.Digest, error) {
	dir := &repb.Directory{}
	for _, name := range sortedKeys(n.files) {
		f := n.files[name]
		dir.Files = append(dir.Files, &repb.FileNode{Name: name, Digest: f.digest.ToProto(), IsExecutable: f.executable})
	}
	for _, name := range sortedKeys(n.dirs) {
		d, err := n.dirs[name].marshal(add)
		if err != nil {
			return cache.Digest{}, err
		}
		dir.Directories = append(dir.Directories, &repb.DirectoryNode{Name: name, Digest: d.ToProto()})
	}
	return add(dir)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fingerprintVersion salts fingerprints; bump it with any change below.
const fingerprintVersion = "hepbuild-fingerprint-v2"

// fingerprint identifies an action by what its key is computed from: every
// field that enters the key, and every input's path, digest and executable
// bit, hashed as one length-prefixed stream instead of as REAPI messages and
// a Merkle tree. Equal fingerprints imply equal keys (TestKeyMutations checks
// that every change of the key changes the fingerprint); the converse need
// not hold, since the stream keeps orders and duplicates the key ignores. The
// journal maps a fingerprint to the key it led to, so that checking an
// up-to-date action costs the input digests (stat calls) and one SHA-256 of a
// few hundred bytes, not the protobuf encoding and tree hashing of
// ComputeKey, which dominated null builds.
func fingerprint(a *Action, in Inputs) (string, error) {
	x := a.Extras()
	h := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(s)))
		buf = append(buf, s...)
		h.Write(buf)
	}
	num := func(n int64) {
		buf = binary.AppendVarint(buf[:0], n)
		h.Write(buf)
	}
	flag := func(b bool) {
		if b {
			num(1)
		} else {
			num(0)
		}
	}
	digest := func(d cache.Digest, x bool) {
		str(d.Hash)
		num(d.Size)
		flag(x)
	}
	artifacts := func(set []Artifact, digests bool) error {
		num(int64(len(set)))
		for _, art := range set {
			str(art.Path)
			flag(art.Dir)
			if !digests {
				continue
			}
			if !art.Dir {
				d, x, err := in.Digest(art)
				if err != nil {
					return err
				}
				digest(d, x)
				continue
			}
			di, ok := in.(DirInputs)
			if !ok {
				return fmt.Errorf("input %s is a folder, and %T cannot list folders", art.Path, in)
			}
			entries, err := di.ListDir(art)
			if err != nil {
				return err
			}
			sorted := append([]FileEntry(nil), entries...)
			sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
			num(int64(len(sorted)))
			for _, e := range sorted {
				str(e.Path)
				digest(e.Digest, e.Executable)
			}
		}
		return nil
	}

	str(fingerprintVersion)
	str(KeyVersion)
	str(runtime.GOOS)
	str(runtime.GOARCH)
	num(int64(a.Kind))
	num(int64(len(a.Argv)))
	for _, s := range a.Argv {
		str(s)
	}
	names := make([]string, 0, len(a.Env))
	for n := range a.Env {
		names = append(names, n)
	}
	sort.Strings(names)
	num(int64(len(names)))
	for _, n := range names {
		str(n)
		str(a.Env[n])
	}
	if err := artifacts(a.Inputs, true); err != nil {
		return "", err
	}
	if err := artifacts(x.Tools, true); err != nil {
		return "", err
	}
	if err := artifacts(a.Outputs, false); err != nil {
		return "", err
	}
	str(string(x.Content))
	flag(a.Executable)
	flag(a.Environment != nil)
	if e := a.Environment; e != nil {
		str(e.Kind)
		params := make([]string, 0, len(e.Params))
		for n := range e.Params {
			params = append(params, n)
		}
		sort.Strings(params)
		num(int64(len(params)))
		for _, n := range params {
			str(n)
			str(e.Params[n])
		}
		if err := artifacts(e.Files, true); err != nil {
			return "", err
		}
	}
	tags := keyTags(x.Tags)
	num(int64(len(tags)))
	for _, t := range tags {
		str(t)
	}
	num(int64(x.Timeout))
	// Only when set, so that the fingerprints of other actions (and the
	// journal's records of them) stay as they were.
	if len(x.SandboxExpose) > 0 {
		num(int64(len(x.SandboxExpose)))
		for _, p := range x.SandboxExpose {
			str(p)
		}
	}
	if x.Remote != nil {
		str(PropRemoteFile)
		str(x.Remote.Identity())
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])), nil
}
