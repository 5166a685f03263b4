package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
)

// SpecVersion is the version of the Spec format; a worker refuses others.
const SpecVersion = 1

// Spec is what a worker needs to run an action beyond its REAPI messages:
// the action as analysis made it (kind, write content, software
// environment with its files, resources, tags) and what the input tree
// cannot say (the targets of input links). It travels as a JSON blob in
// the cache, next to the Action. Nothing in it is trusted: the worker
// recomputes the action's key from the Spec and the inputs it fetched, and
// refuses to run an action whose key is not the one it was asked to run.
type Spec struct {
	Version int     `json:"version"`
	Action  *Action `json:"action"`
	// Links are the targets of input symbolic links, by path: the input
	// tree holds only their digests.
	Links map[string]string `json:"links,omitempty"`
	// EnvFiles are the software environment's own files, which are not in
	// the input tree.
	EnvFiles []SpecFile `json:"env_files,omitempty"`
}

// SpecFile is a file the worker materialises by digest.
type SpecFile struct {
	Path       string       `json:"path"`
	Digest     cache.Digest `json:"digest"`
	Executable bool         `json:"executable,omitempty"`
}

// NewSpec describes the action for a worker and returns the serialized
// Spec and its digest. execRoot holds the inputs (for link targets and
// the environment's files).
func NewSpec(a *Action, execRoot string, in Inputs) ([]byte, cache.Digest, error) {
	s := Spec{Version: SpecVersion, Action: a}
	for _, set := range [][]Artifact{a.Inputs, a.Extras().Tools} {
		for _, art := range set {
			if art.Dir && !art.Source {
				// A generated folder's links enter the tree as links (see
				// listDir): the worker makes them again.
				if err := folderLinks(&s, execRoot, art.Path); err != nil {
					return nil, cache.Digest{}, err
				}
				continue
			}
			if !art.Symlink {
				continue
			}
			t, err := os.Readlink(filepath.Join(execRoot, art.Path))
			if err != nil {
				continue // not a link after all: the tree holds the file
			}
			if s.Links == nil {
				s.Links = map[string]string{}
			}
			s.Links[art.Path] = t
		}
	}
	if a.Environment != nil {
		for _, f := range a.Environment.Files {
			d, x, err := in.Digest(f)
			if err != nil {
				return nil, cache.Digest{}, fmt.Errorf("environment file %s: %w", f.Path, err)
			}
			s.EnvFiles = append(s.EnvFiles, SpecFile{Path: f.Path, Digest: d, Executable: x})
		}
	}
	b, err := json.Marshal(&s)
	if err != nil {
		return nil, cache.Digest{}, err
	}
	return b, cache.FromBytes(b), nil
}

// folderLinks adds the links below the generated folder dir to s.Links.
func folderLinks(s *Spec, execRoot, dir string) error {
	root := filepath.Join(execRoot, dir)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if s.Links == nil {
			s.Links = map[string]string{}
		}
		s.Links[path.Join(dir, filepath.ToSlash(rel))] = t
		return nil
	})
}

// ParseSpec reads a serialized Spec.
func ParseSpec(b []byte) (*Spec, error) {
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("reading the action's description: %w", err)
	}
	if s.Version != SpecVersion {
		return nil, fmt.Errorf("the action's description has version %d; this hepbuild reads version %d (run the same hepbuild on both sides)", s.Version, SpecVersion)
	}
	if s.Action == nil {
		return nil, errors.New("the action's description holds no action")
	}
	return &s, nil
}

// InputFile is one file of an action's input tree.
type InputFile struct {
	Path       string
	Digest     cache.Digest
	Executable bool
}

// InputFiles lists every file of the input tree rooted at root, reading
// Directory messages through get.
func InputFiles(root cache.Digest, get func(cache.Digest) ([]byte, error)) ([]InputFile, error) {
	var out []InputFile
	var walk func(prefix string, d cache.Digest, depth int) error
	walk = func(prefix string, d cache.Digest, depth int) error {
		if depth > 256 {
			return errors.New("input tree is too deep")
		}
		b, err := get(d)
		if err != nil {
			return fmt.Errorf("input folder %q: %w", prefix, err)
		}
		if cache.FromBytes(b) != d {
			return fmt.Errorf("input folder %q: %w", prefix, errCorrupt)
		}
		var dir repb.Directory
		if err := proto.Unmarshal(b, &dir); err != nil {
			return fmt.Errorf("input folder %q: %w", prefix, err)
		}
		for _, f := range dir.GetFiles() {
			if err := checkName(f.GetName()); err != nil {
				return err
			}
			out = append(out, InputFile{Path: path.Join(prefix, f.GetName()), Digest: cache.FromProto(f.GetDigest()), Executable: f.GetIsExecutable()})
		}
		for _, sub := range dir.GetDirectories() {
			if err := checkName(sub.GetName()); err != nil {
				return err
			}
			if err := walk(path.Join(prefix, sub.GetName()), cache.FromProto(sub.GetDigest()), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", root, 0); err != nil {
		return nil, err
	}
	return out, nil
}

func checkName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
		return fmt.Errorf("input tree names a file %q", n)
	}
	return nil
}

// missingFinder is a cache that answers which of many blobs it lacks in
// one call (a remote cache).
type missingFinder interface {
	FindMissing(ctx context.Context, ds []cache.Digest) ([]cache.Digest, error)
}

// UploadInputs puts everything a worker needs to run the action into cas:
// the key's messages, the Spec (returned with its digest) and every input
// file, read from execRoot and verified against the digest it was keyed
// with (an input edited since is an error, never a wrong upload). Blobs
// already there are not sent again.
func UploadInputs(ctx context.Context, cas cache.CAS, a *Action, key *Key, execRoot string, in Inputs) (cache.Digest, error) {
	spec, specDigest, err := NewSpec(a, execRoot, in)
	if err != nil {
		return cache.Digest{}, err
	}
	blobs := map[cache.Digest][]byte{specDigest: spec}
	for d, b := range key.Blobs {
		blobs[d] = b
	}
	files, err := InputFiles(key.InputRoot, func(d cache.Digest) ([]byte, error) {
		if b, ok := key.Blobs[d]; ok {
			return b, nil
		}
		return nil, cache.ErrNotFound
	})
	if err != nil {
		return cache.Digest{}, err
	}
	s, _ := ParseSpec(spec)
	byDigest := map[cache.Digest]string{}
	for _, f := range files {
		if _, link := s.Links[f.Path]; !link {
			byDigest[f.Digest] = f.Path
		}
	}
	for _, f := range s.EnvFiles {
		byDigest[f.Digest] = f.Path
	}
	all := make([]cache.Digest, 0, len(blobs)+len(byDigest))
	for d := range blobs {
		all = append(all, d)
	}
	for d := range byDigest {
		if _, ok := blobs[d]; !ok {
			all = append(all, d)
		}
	}
	missing, err := findMissing(ctx, cas, all)
	if err != nil {
		return cache.Digest{}, err
	}
	if len(missing) == 0 {
		return specDigest, nil
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, 16)
	)
	for _, d := range missing {
		wg.Add(1)
		sem <- struct{}{}
		go func(d cache.Digest) {
			defer func() { <-sem; wg.Done() }()
			var err error
			select {
			case uploadSlots <- struct{}{}:
				err = putOne(ctx, cas, d, blobs[d], byDigest[d], execRoot)
				<-uploadSlots
			case <-ctx.Done():
				err = ctx.Err()
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}(d)
	}
	wg.Wait()
	return specDigest, firstErr
}

// uploadSlots bounds the blobs being uploaded by all UploadInputs calls
// at once: actions sent away start together, without a job slot each,
// and each upload holds open files (the input, a cache's temporary file).
var uploadSlots = make(chan struct{}, 64)

func putOne(ctx context.Context, cas cache.CAS, d cache.Digest, b []byte, p, execRoot string) error {
	if b != nil {
		return cas.Put(ctx, d, bytes.NewReader(b))
	}
	if p == "" {
		return fmt.Errorf("blob %s is in no input", d)
	}
	f, err := os.Open(filepath.Join(execRoot, p))
	if err != nil {
		return fmt.Errorf("uploading input %s: %w", p, err)
	}
	defer f.Close()
	if err := cas.Put(ctx, d, f); err != nil {
		// A file that no longer has the content it was keyed with was
		// edited during the build: the runner retries with what it is now.
		if _, serr := f.Seek(0, io.SeekStart); serr == nil {
			if now, herr := cache.FromReader(f); herr == nil && now != d {
				return &inputChangedError{path: p}
			}
		}
		return fmt.Errorf("uploading input %s: %w", p, err)
	}
	return nil
}

// findMissing asks the cache which blobs it lacks: in one call where it
// can, else blob by blob.
func findMissing(ctx context.Context, cas cache.CAS, ds []cache.Digest) ([]cache.Digest, error) {
	if mf, ok := cas.(missingFinder); ok {
		return mf.FindMissing(ctx, ds)
	}
	var missing []cache.Digest
	for _, d := range ds {
		ok, err := cas.Contains(ctx, d)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, d)
		}
	}
	return missing, nil
}

// ReadBlob reads a whole blob, verified, of at most limit bytes.
func ReadBlob(ctx context.Context, cas cache.CAS, d cache.Digest, limit int64) ([]byte, error) {
	if d.Size > limit {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", d, limit)
	}
	rc, err := cas.Get(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if cache.FromBytes(b) != d {
		return nil, errCorrupt
	}
	return b, nil
}

// FailureKey is where a worker records, in the action cache, how an action
// it ran failed (exit code and log as an ActionResult), for the build that
// submitted it: the action cache holds only successes under the action's
// own key. token is the submission's, so that a record of an earlier
// attempt is never mistaken for this one's.
func FailureKey(action cache.Digest, token string) cache.Digest {
	return cache.FromBytes([]byte("hepbuild-failure\x00" + action.String() + "\x00" + token))
}
