package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/hepbuild/hepbuild/cache"
)

// The test binary doubles as a helper process for the tests that need a
// second process or another user (see helperMain).
const helperEnv = "HEPBUILD_DISK_TEST_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		if err := helperMain(role, os.Args[len(os.Args)-1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var ctx = context.Background()

func open(t *testing.T) *Cache {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reopen opens c's folder again, as another process would.
func reopen(t *testing.T, c *Cache) *Cache {
	t.Helper()
	c2, err := Open(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	return c2
}

func put(t testing.TB, c *Cache, content []byte) cache.Digest {
	t.Helper()
	d := cache.FromBytes(content)
	if err := c.Put(ctx, d, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	return d
}

func get(c *Cache, d cache.Digest) ([]byte, error) {
	rc, err := c.Get(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// leftovers lists the temporary files under dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var tmp []string
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(de.Name(), tmpPrefix) {
			tmp = append(tmp, p)
		}
		return nil
	})
	return tmp
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func TestRoundTrip(t *testing.T) {
	c := open(t)
	blobs := [][]byte{nil, []byte("hello"), randomBytes(1, 3<<20+5)}
	for _, b := range blobs {
		d := put(t, c, b)
		if ok, err := c.Contains(ctx, d); !ok || err != nil {
			t.Errorf("Contains(%s) = %v, %v; want true", d, ok, err)
		}
		got, err := get(c, d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("Get(%s) returned %d bytes, want the %d put", d, len(got), len(b))
		}
		p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("entry not at %s: %v", p, err)
		}
		if fi.Mode().Perm() != fileMode {
			t.Errorf("entry mode %v, want %v", fi.Mode().Perm(), fs.FileMode(fileMode))
		}
		// In a personal cache (its folder is in one only its user can
		// write), no folder is group-writable: no one else adds entries.
		for _, dir := range []string{c.Dir(), filepath.Dir(filepath.Dir(p)), filepath.Dir(p)} {
			if fi, err := os.Stat(dir); err != nil || fi.Mode()&0o022 != 0 {
				t.Errorf("%s: mode %v, %v; want writable by its owner only", dir, fi.Mode(), err)
			}
		}
		// Storing again is a no-op that does not even read.
		if err := c.Put(ctx, d, iotestErrReader{}); err != nil {
			t.Errorf("second Put: %v", err)
		}
	}
	missing := cache.FromBytes([]byte("never stored"))
	if ok, _ := c.Contains(ctx, missing); ok {
		t.Error("Contains of a missing blob = true")
	}
	if _, err := c.Get(ctx, missing); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get of a missing blob: %v, want ErrNotFound", err)
	}
	if _, err := c.Get(ctx, cache.Digest{Hash: "../../etc/passwd", Size: 1}); err == nil {
		t.Error("Get accepted a digest that is not a hash")
	}
	if tmp := leftovers(t, c.Dir()); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("must not be read") }

func TestPutRejectsWrongContent(t *testing.T) {
	c := open(t)
	d := cache.FromBytes([]byte("expected"))
	for name, r := range map[string]io.Reader{
		"other content": strings.NewReader("received"),
		"short":         strings.NewReader("expecte"),
		"read error":    io.MultiReader(strings.NewReader("exp"), iotestErrReader{}),
	} {
		if err := c.Put(ctx, d, r); err == nil {
			t.Errorf("%s: Put succeeded", name)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Put(cancelled, d, strings.NewReader("expected")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put: %v, want context.Canceled", err)
	}
	if ok, _ := c.Contains(ctx, d); ok {
		t.Error("a rejected Put left an entry")
	}
	if tmp := leftovers(t, c.Dir()); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestCorruptBlobIsDetectedAndRemoved(t *testing.T) {
	for _, size := range []int{10, 5 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := open(t)
			d := put(t, c, randomBytes(2, size))
			p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)
			corrupt(t, p, size/2)

			rc, err := c.Get(ctx, d)
			if err != nil {
				t.Fatalf("Get: %v (same size: the corruption shows only when read)", err)
			}
			_, err = io.Copy(io.Discard, rc) // through WriteTo
			rc.Close()
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("reading a corrupt blob: %v, want ErrCorrupt", err)
			}
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("corrupt entry still on disk: %v", err)
			}
			if _, err := c.Get(ctx, d); !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("Get after detection: %v, want ErrNotFound", err)
			}

			// BlobPath checks the hash too, even of a blob it verified before.
			put(t, c, randomBytes(2, size))
			if _, err := c.BlobPath(d); err != nil {
				t.Fatal(err)
			}
			corrupt(t, p, 0)
			if _, err := c.BlobPath(d); !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("BlobPath of a corrupt blob: %v, want ErrNotFound", err)
			}
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("corrupt entry still on disk after BlobPath: %v", err)
			}
		})
	}
}

// corrupt flips one byte of the file in place (we may be root: mode 0444
// does not stop us, which is what a bad disk or a careless user does).
func corrupt(t *testing.T, p string, off int) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		if os.Chmod(p, 0o644) != nil {
			t.Fatal(err)
		}
		if f, err = os.OpenFile(p, os.O_RDWR, 0); err != nil {
			t.Fatal(err)
		}
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, int64(off))
	b[0] ^= 0x55
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
}

func TestTruncatedBlob(t *testing.T) {
	c := open(t)
	d := put(t, c, []byte("a blob that a crash cut short"))
	p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)
	if err := os.Truncate(p, 5); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Contains(ctx, d); ok {
		t.Error("Contains of a truncated blob = true")
	}
	if _, err := c.Get(ctx, d); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get of a truncated blob: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("truncated entry still on disk: %v", err)
	}
	// The blob can be stored again.
	put(t, c, []byte("a blob that a crash cut short"))
	if _, err := get(c, d); err != nil {
		t.Error(err)
	}
}

// actionResult stores blobs for an output file, stdout and an output folder
// and returns a result referencing them all.
func actionResult(t *testing.T, c *Cache) (*repb.ActionResult, map[string]cache.Digest) {
	t.Helper()
	refs := map[string]cache.Digest{
		"output file": put(t, c, []byte("histogram")),
		"stdout":      put(t, c, []byte("processed 10 events\n")),
		"tree file":   put(t, c, []byte("plot.pdf bytes")),
	}
	tree := &repb.Tree{Root: &repb.Directory{Files: []*repb.FileNode{
		{Name: "plot.pdf", Digest: refs["tree file"].ToProto()},
	}}}
	tb, err := proto.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	refs["tree"] = put(t, c, tb)
	return &repb.ActionResult{
		OutputFiles:       []*repb.OutputFile{{Path: "hepbuild-out/a/h.root", Digest: refs["output file"].ToProto()}},
		OutputDirectories: []*repb.OutputDirectory{{Path: "hepbuild-out/a/plots", TreeDigest: refs["tree"].ToProto()}},
		StdoutDigest:      refs["stdout"].ToProto(),
		ExitCode:          0,
	}, refs
}

func TestActionResultRoundTrip(t *testing.T) {
	c := open(t)
	want, _ := actionResult(t, c)
	action := cache.FromBytes([]byte("action"))
	if _, err := c.GetActionResult(ctx, action); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("GetActionResult before Put: %v, want ErrNotFound", err)
	}
	if err := c.PutActionResult(ctx, action, want); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetActionResult(ctx, action)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("action result mismatch (-want +got):\n%s", diff)
	}
}

// A damaged entry is a miss and is removed, and so is a name that leads to
// a pack without a whole record of its action. at is where the entry
// starts in its pack.
func TestCorruptActionResult(t *testing.T) {
	for name, damage := range map[string]func(p string, at int){
		"flipped payload":       func(p string, at int) { corrupt(t, p, at+acHeaderSize+2) },
		"flipped header":        func(p string, at int) { corrupt(t, p, at+1) },
		"flipped record hash":   func(p string, at int) { corrupt(t, p, at-5) },
		"flipped record length": func(p string, at int) { corrupt(t, p, at-packRecordHeader) },
		"flipped pack magic":    func(p string, at int) { corrupt(t, p, 0) },
		"truncated":             func(p string, at int) { os.Truncate(p, int64(at+acHeaderSize+3)) },
		"truncated in header":   func(p string, at int) { os.Truncate(p, int64(at-3)) },
		"empty":                 func(p string, at int) { os.Truncate(p, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			c := open(t)
			r, _ := actionResult(t, c)
			action := cache.FromBytes([]byte("action"))
			// Another result before it, in the same pack, and read.
			if err := c.PutActionResult(ctx, cache.FromBytes([]byte("first")), r); err != nil {
				t.Fatal(err)
			}
			if err := c.PutActionResult(ctx, action, r); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetActionResult(ctx, action); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(c.Dir(), "ac.v2", action.Hash[:2], action.Hash)
			_, at := entryAt(t, c, p, action)
			if at == 0 {
				t.Fatal("the result was not written into a pack")
			}
			damage(p, int(at))
			// This process indexed the pack before: an entry it finds
			// there damaged is looked for again. Damage around an intact
			// entry may still be read from that index (it verifies); a
			// process that reads the pack afresh finds none.
			got, err := c.GetActionResult(ctx, action)
			if err == nil && !strings.Contains(name, "record") && !strings.Contains(name, "magic") {
				t.Errorf("GetActionResult of a damaged entry: %v, want ErrNotFound", got)
			}
			if err == nil {
				if _, err := reopen(t, c).GetActionResult(ctx, action); !errors.Is(err, cache.ErrNotFound) {
					t.Errorf("GetActionResult of a damaged entry, by another process: %v, want ErrNotFound", err)
				}
			} else if !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("GetActionResult of a damaged entry: %v, want ErrNotFound", err)
			}
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("damaged entry still on disk: %v", err)
			}
		})
	}
}

func TestActionResultWithMissingBlobIsAMiss(t *testing.T) {
	c := open(t)
	r, refs := actionResult(t, c)
	action := cache.FromBytes([]byte("action"))
	if err := c.PutActionResult(ctx, action, r); err != nil {
		t.Fatal(err)
	}
	contents := map[string][]byte{}
	for name, d := range refs {
		b, err := get(c, d)
		if err != nil {
			t.Fatal(err)
		}
		contents[name] = b
	}
	for name, d := range refs {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetActionResult(ctx, action); !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("result whose %s is gone: %v, want ErrNotFound", name, err)
			}
			put(t, c, contents[name])
			if _, err := c.GetActionResult(ctx, action); err != nil {
				t.Errorf("result with every blob back: %v", err)
			}
		})
	}
}

func TestConcurrentPutsOneProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	// Two Cache values on one folder behave like two processes, minus the
	// separate address space (TestConcurrentPutsTwoProcesses has that).
	var caches []*Cache
	for i := 0; i < 2; i++ {
		c, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		caches = append(caches, c)
	}
	shared := randomBytes(3, 2<<20)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := caches[g%2]
			for i := 0; i < 5; i++ {
				for _, b := range [][]byte{shared, randomBytes(int64(100+g*10+i), 64<<10)} {
					d := cache.FromBytes(b)
					if err := c.Put(ctx, d, bytes.NewReader(b)); err != nil {
						t.Error(err)
					}
					if got, err := get(c, d); err != nil || !bytes.Equal(got, b) {
						t.Errorf("Get(%s) after Put: %d bytes, %v", d, len(got), err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if tmp := leftovers(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// helperBlobs is what each helper process stores: some blobs shared by all
// helpers and some of its own.
func helperBlobs(id string) [][]byte {
	var blobs [][]byte
	for i := 0; i < 20; i++ {
		blobs = append(blobs, randomBytes(int64(1000+i), 256<<10))
		blobs = append(blobs, []byte(fmt.Sprintf("helper %s blob %d", id, i)))
	}
	return blobs
}

func helperMain(role, dir string) error {
	switch role {
	case "put-a", "put-b":
		c, err := Open(dir)
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, b := range helperBlobs(role) {
					if err := c.Put(ctx, cache.FromBytes(b), bytes.NewReader(b)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	case "read-only":
		c, err := Open(dir)
		if err != nil {
			return fmt.Errorf("Open: %w", err)
		}
		if !c.ReadOnly() {
			return errors.New("ReadOnly() = false on a folder this user cannot write")
		}
		if _, err := get(c, cache.FromBytes([]byte("present"))); err != nil {
			return fmt.Errorf("reading from a read-only cache: %w", err)
		}
		b := []byte("new blob")
		if err := c.Put(ctx, cache.FromBytes(b), bytes.NewReader(b)); !errors.Is(err, ErrReadOnly) {
			return fmt.Errorf("Put: %v, want ErrReadOnly", err)
		}
		if err := c.PutActionResult(ctx, cache.FromBytes(b), &repb.ActionResult{}); !errors.Is(err, ErrReadOnly) {
			return fmt.Errorf("PutActionResult: %v, want ErrReadOnly", err)
		}
		if _, err := Open(filepath.Join(dir, "cas.v1", "new-cache")); err == nil {
			return errors.New("Open of a folder that cannot be created succeeded")
		}
		return nil
	}
	return fmt.Errorf("unknown helper role %q", role)
}

func TestConcurrentPutsTwoProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for _, role := range []string{"put-a", "put-b"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$", dir)
		cmd.Env = append(os.Environ(), helperEnv+"="+role)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"put-a", "put-b"} {
		for _, b := range helperBlobs(role) {
			got, err := get(c, cache.FromBytes(b))
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("blob of %s: %d bytes, %v", role, len(got), err)
			}
		}
	}
	if tmp := leftovers(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestPutFileLinksAndBlobPath(t *testing.T) {
	c := open(t)
	out := filepath.Join(t.TempDir(), "hist.root")
	content := randomBytes(4, 1<<20)
	if err := os.WriteFile(out, content, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := c.PutFile(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if want := cache.FromBytes(content); d != want {
		t.Fatalf("PutFile digest %s, want %s", d, want)
	}
	p, err := c.BlobPath(d)
	if err != nil {
		t.Fatal(err)
	}
	if !sameFile(t, p, out) {
		t.Error("PutFile copied a file on the cache's file system instead of linking it")
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o444 {
		t.Errorf("stored output has mode %v, want read-only 0444", fi.Mode().Perm())
	}

	// The executor links the blob into another output tree; pruning the
	// whole cache leaves that output intact.
	linked := filepath.Join(t.TempDir(), "restored.root")
	if err := os.Link(p, linked); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prune(ctx, PruneOptions{MaxSize: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.BlobPath(d); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("BlobPath after pruning everything: %v, want ErrNotFound", err)
	}
	if got, err := os.ReadFile(linked); err != nil || !bytes.Equal(got, content) {
		t.Errorf("linked output after prune: %d bytes, %v", len(got), err)
	}

	// Executables are copied, so the cache's inode stays 0444 and the
	// output keeps its mode.
	tool := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	td, err := c.PutFile(ctx, tool)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := c.BlobPath(td)
	if err != nil {
		t.Fatal(err)
	}
	if sameFile(t, tp, tool) {
		t.Error("PutFile linked an executable")
	}
	if fi, _ := os.Stat(tool); fi.Mode().Perm() != 0o755 {
		t.Errorf("executable's mode changed to %v", fi.Mode().Perm())
	}
	if tmp := leftovers(t, c.Dir()); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestPutFileAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "hepbuild-disk-test")
	if err != nil {
		t.Skip("no /dev/shm:", err)
	}
	defer os.RemoveAll(shm)
	c := open(t)
	if devOf(t, shm) == devOf(t, c.Dir()) {
		t.Skip("/dev/shm is on the same file system as the test's temporary folder")
	}
	f := filepath.Join(shm, "data")
	if err := os.WriteFile(f, []byte("on another file system"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := c.PutFile(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := get(c, d)
	if err != nil || string(got) != "on another file system" {
		t.Errorf("Get after PutFile across file systems: %q, %v", got, err)
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

func devOf(t *testing.T, p string) uint64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Sys().(*syscall.Stat_t).Dev)
}

func setMtime(t *testing.T, p string, when time.Time) {
	t.Helper()
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
}

func TestReadsRefreshRecency(t *testing.T) {
	c := open(t)
	d := put(t, c, []byte("blob"))
	p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)

	recent := time.Now().Add(-touchInterval / 2).Truncate(time.Second)
	setMtime(t, p, recent)
	get(c, d)
	if fi, _ := os.Stat(p); !fi.ModTime().Equal(recent) {
		t.Errorf("a read within %v of the last touched the entry again (mtime %v, was %v)", touchInterval, fi.ModTime(), recent)
	}

	old := time.Now().Add(-48 * time.Hour)
	for name, read := range map[string]func(){
		"Get":      func() { get(c, d) },
		"Contains": func() { c.Contains(ctx, d) },
		"BlobPath": func() { c.BlobPath(d) },
		"Put":      func() { put(t, c, []byte("blob")) },
	} {
		setMtime(t, p, old)
		read()
		if fi, _ := os.Stat(p); time.Since(fi.ModTime()) > time.Minute {
			t.Errorf("%s did not refresh an entry last used %v ago", name, time.Since(old).Round(time.Hour))
		}
	}
}

type fixtureEntry struct {
	d    cache.Digest
	size int64 // on disk
	age  time.Duration
}

func TestPruneBySize(t *testing.T) {
	c := open(t)
	now := time.Now()
	var entries []fixtureEntry
	for i := 0; i < 10; i++ {
		b := randomBytes(int64(i), 1000*(i+1))
		d := put(t, c, b)
		age := time.Duration(10-i) * time.Hour // blob 0 is the least recently used
		setMtime(t, filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash), now.Add(-age))
		entries = append(entries, fixtureEntry{d, d.Size, age})
	}
	var total int64
	for _, e := range entries {
		total += e.size
	}
	maxSize := total / 2
	// Expect the oldest blobs to go until the rest fits.
	var wantBlobs int
	var wantBytes, kept int64 = 0, total
	for _, e := range entries {
		if kept <= maxSize {
			break
		}
		wantBlobs++
		wantBytes += e.size
		kept -= e.size
	}
	want := PruneReport{Blobs: wantBlobs, BlobBytes: wantBytes, KeptEntries: len(entries) - wantBlobs, KeptBytes: kept}

	before := listFiles(t, c.Dir())
	dry, err := c.Prune(ctx, PruneOptions{MaxSize: maxSize, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, dry); diff != "" {
		t.Errorf("dry run report mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, listFiles(t, c.Dir())); diff != "" {
		t.Errorf("dry run changed the cache (-before +after):\n%s", diff)
	}
	rep, err := c.Prune(ctx, PruneOptions{MaxSize: maxSize})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report mismatch (-want +got):\n%s", diff)
	}
	for i, e := range entries {
		ok, _ := c.Contains(ctx, e.d)
		if wantGone := i < wantBlobs; ok == wantGone {
			t.Errorf("blob %d (age %v): present = %v, want %v", i, e.age, ok, !wantGone)
		}
	}
}

func TestPruneByAgeRemovesResultsBeforeTheirBlobs(t *testing.T) {
	c := open(t)
	now := time.Now()
	cas := func(d cache.Digest) string { return filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash) }
	ac := func(d cache.Digest) string { return filepath.Join(c.Dir(), "ac.v2", d.Hash[:2], d.Hash) }

	// A recently used result whose output blob is old: the blob goes, so
	// the result, which could never hit again, goes too.
	r, refs := actionResult(t, c)
	action := cache.FromBytes([]byte("action"))
	if err := c.PutActionResult(ctx, action, r); err != nil {
		t.Fatal(err)
	}
	for _, d := range refs {
		setMtime(t, cas(d), now.Add(-time.Hour))
	}
	setMtime(t, cas(refs["output file"]), now.Add(-40*24*time.Hour))
	// An old result whose blobs are recent: only the result goes. (Written
	// by another process, into a pack of its own: all names of a pack have
	// its mtime.)
	oldAction := cache.FromBytes([]byte("old action"))
	keep := put(t, c, []byte("recent output"))
	if err := reopen(t, c).PutActionResult(ctx, oldAction, &repb.ActionResult{
		OutputFiles: []*repb.OutputFile{{Path: "x", Digest: keep.ToProto()}},
	}); err != nil {
		t.Fatal(err)
	}
	setMtime(t, ac(oldAction), now.Add(-31*24*time.Hour))
	// A temporary file from a writer that died long ago, and one in use.
	stale := filepath.Join(c.Dir(), "cas.v1", "ab", tmpPrefix+"dead")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte("partial"), 0o644)
	setMtime(t, stale, now.Add(-2*time.Hour))
	live := filepath.Join(c.Dir(), "cas.v1", "ab", tmpPrefix+"writing")
	os.WriteFile(live, []byte("partial"), 0o644)

	sizeOf := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	var keptBytes int64
	keptEntries := 0
	for name, d := range refs {
		if name != "output file" {
			keptBytes += sizeOf(cas(d))
			keptEntries++
		}
	}
	keptBytes += sizeOf(cas(keep))
	keptEntries++
	want := PruneReport{
		ActionResults: 2, ActionResultBytes: int64(len(entryOf(t, c, action)) + len(entryOf(t, c, oldAction))),
		Blobs: 1, BlobBytes: refs["output file"].Size,
		TempFiles: 1, TempFileBytes: int64(len("partial")),
		KeptEntries: keptEntries, KeptBytes: keptBytes,
	}
	for _, dry := range []bool{true, false} {
		rep, err := c.Prune(ctx, PruneOptions{MaxAge: 30 * 24 * time.Hour, DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, rep); diff != "" {
			t.Errorf("dry run %v: report mismatch (-want +got):\n%s", dry, diff)
		}
	}
	for _, p := range []string{ac(action), ac(oldAction), cas(refs["output file"]), stale} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived the prune: %v", p, err)
		}
	}
	for _, p := range []string{cas(keep), cas(refs["stdout"]), live} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was pruned: %v", p, err)
		}
	}
}

func TestOpenWhereNoFolderCanBe(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "cache")} {
		if c, err := Open(dir); err == nil {
			t.Errorf("Open(%s) = %v, want an error: the path is (under) a regular file", dir, c)
		}
	}
	if left := listFiles(t, filepath.Dir(file)); len(left) != 2 {
		t.Errorf("files after failed Opens: %v", left)
	}
}

// TestReadOnlyFolder opens a cache its user cannot write. Root bypasses
// permissions, so as root the check runs in a helper process as nobody.
func TestReadOnlyFolder(t *testing.T) {
	base, err := os.MkdirTemp("", "hepbuild-disk-ro")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	dir := filepath.Join(base, "cache")
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, []byte("present"))
	before := listFiles(t, dir)

	if os.Geteuid() != 0 {
		for _, p := range before {
			if fi, _ := os.Stat(p); fi.IsDir() {
				os.Chmod(p, 0o555)
			}
		}
		defer filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		if err := helperMain("read-only", dir); err != nil {
			t.Error(err)
		}
	} else {
		// The helper must be able to reach and run the test binary.
		os.Chmod(base, 0o755)
		bin := filepath.Join(base, "disk.test")
		self, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, self, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^$", dir)
		cmd.Dir = base
		cmd.Env = append(os.Environ(), helperEnv+"=read-only")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("helper as nobody: %v\n%s", err, out)
		}
	}
	if diff := cmp.Diff(before, listFiles(t, dir)); diff != "" {
		t.Errorf("a read-only cache changed on disk (-before +after):\n%s", diff)
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1234", 1234}, {"100B", 100}, {"1KB", 1000}, {"50GB", 50e9}, {"50gb", 50e9},
		{"1.5TB", 1.5e12}, {"2 MB", 2e6}, {"1KiB", 1024}, {"512MiB", 512 << 20}, {"2GiB", 2 << 30},
		{"1TiB", 1 << 40}, {" 7 ", 7},
	} {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "GB", "50G", "-1GB", "1.2.3MB", "10PB", "abc", "1e3", "99999999999TB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseAge(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"30d", 30 * day}, {"12h", 12 * time.Hour}, {"90m", 90 * time.Minute}, {"45s", 45 * time.Second},
		{"2w", 14 * day}, {"1d12h", 36 * time.Hour}, {"0d", 0},
	} {
		got, err := ParseAge(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "30", "d", "3y", "1.5d", "-1d", "1d 2h", "99999999999999w"} {
		if got, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q) = %v, want an error", in, got)
		}
	}
}

// A cache in a group-writable folder (set up for a group: chmod 2775) is
// shared: every folder hepbuild makes in it is group-writable and setgid,
// whatever the umask, so every member can add entries to every shard.
func TestSharedCacheFoldersAreGroupWritable(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "group")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o775|fs.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	c, err := Open(filepath.Join(shared, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	d := put(t, c, []byte("shared"))
	p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)
	for _, dir := range []string{c.Dir(), filepath.Dir(filepath.Dir(p)), filepath.Dir(p)} {
		if fi, err := os.Stat(dir); err != nil || fi.Mode()&(0o020|fs.ModeSetgid) != 0o020|fs.ModeSetgid {
			t.Errorf("%s: mode %v, %v; want group-writable and setgid", dir, fi.Mode(), err)
		}
	}
}

// TestShardFolderRemovedBehindTheCache: a Cache remembers the shard
// folders it has made; when one goes away (the cache removed by hand while
// a build runs), the next write into it makes it again rather than fail.
func TestShardFolderRemovedBehindTheCache(t *testing.T) {
	c := open(t)
	action := cache.FromBytes([]byte("action"))
	r, _ := actionResult(t, c)
	if err := c.PutActionResult(ctx, action, r); err != nil {
		t.Fatal(err)
	}
	blob := []byte("a blob")
	d := put(t, c, blob)
	out := filepath.Join(t.TempDir(), "out.txt")
	if err := os.WriteFile(out, []byte("an output"), 0o644); err != nil {
		t.Fatal(err)
	}
	linked, err := c.PutFile(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"ac.v2", "cas.v1"} {
		if err := os.RemoveAll(filepath.Join(c.Dir(), kind)); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(c.Dir(), kind), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PutActionResult(ctx, action, r); err != nil {
		t.Errorf("PutActionResult after its shard was removed: %v", err)
	}
	if err := c.Put(ctx, d, bytes.NewReader(blob)); err != nil {
		t.Errorf("Put after its shard was removed: %v", err)
	}
	out2 := filepath.Join(t.TempDir(), "out.txt")
	if err := os.WriteFile(out2, []byte("an output"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := c.PutFile(ctx, out2); err != nil || got != linked {
		t.Errorf("PutFile after its shard was removed: %v, %v", got, err)
	}
	for _, p := range []string{
		filepath.Join(c.Dir(), "ac.v2", action.Hash[:2], action.Hash),
		filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash),
		filepath.Join(c.Dir(), "cas.v1", linked.Hash[:2], linked.Hash),
	} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("entry not stored again: %v", err)
		}
	}
	if tmp := leftovers(t, c.Dir()); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// TestShardLinkIsRefused: a shard folder replaced by a symbolic link to a
// folder elsewhere is not written through.
func TestShardLinkIsRefused(t *testing.T) {
	c := open(t)
	elsewhere := t.TempDir()
	blob := []byte("through a link")
	d := cache.FromBytes(blob)
	if err := os.Symlink(elsewhere, filepath.Join(c.Dir(), "cas.v1", d.Hash[:2])); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, d, bytes.NewReader(blob)); err == nil {
		t.Error("Put wrote through a shard that is a symbolic link")
	}
	if left, _ := os.ReadDir(elsewhere); len(left) != 0 {
		t.Errorf("written outside the cache: %v", left)
	}
}

// A blob verified once is not hashed again in the same process, even when
// verifying it also refreshed its recency (which changes its times).
func TestBlobPathRemembersTheTouchedBlob(t *testing.T) {
	c := open(t)
	d := put(t, c, randomBytes(1, 1<<20))
	p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)
	setMtime(t, p, time.Now().Add(-48*time.Hour))
	if _, err := c.BlobPath(d); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(fi.ModTime()) > time.Hour {
		t.Fatalf("the blob's recency was not refreshed: mtime %v", fi.ModTime())
	}
	id, ok := c.verified.Load(d.Hash)
	if !ok || id.(fileID) != idOf(fi) {
		t.Errorf("remembered %+v, the blob is now %+v: the next BlobPath hashes it again", id, idOf(fi))
	}
}

// An output the executor already made read-only is linked without a
// chmod; any other mode becomes the entry's 0444 all the same, also one
// whose permission bits are 0444 beside a setuid, setgid or sticky bit.
func TestPutFileModes(t *testing.T) {
	c := open(t)
	for i, mode := range []fs.FileMode{0o444, 0o400, 0o664, 0o444 | fs.ModeSetuid, 0o444 | fs.ModeSetgid, 0o444 | fs.ModeSticky} {
		out := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(out, randomBytes(int64(10+i), 100), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(out, mode); err != nil {
			t.Fatal(err)
		}
		d, err := c.PutFile(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.BlobPath(d)
		if err != nil {
			t.Fatal(err)
		}
		if !sameFile(t, p, out) {
			t.Errorf("mode %v: not linked", mode)
		}
		if fi, _ := os.Stat(p); fi.Mode() != fileMode {
			t.Errorf("mode %v: entry has mode %v, want %v", mode, fi.Mode(), fs.FileMode(fileMode))
		}
	}
}

// TestBlobPathSymlink: a symbolic link where a blob should be, to a file
// of the blob's content, is no blob, before and after the blob was
// verified by this process: the caller would hard-link the link, and the
// file it points to may change. The link goes; the file it points to stays.
func TestBlobPathSymlink(t *testing.T) {
	for _, verified := range []bool{false, true} {
		c := open(t)
		content := []byte("verified content\n")
		d := put(t, c, content)
		p := filepath.Join(c.Dir(), "cas.v1", d.Hash[:2], d.Hash)
		if verified {
			if _, err := c.BlobPath(d); err != nil {
				t.Fatal(err)
			}
		}
		// The very file, moved aside, and a link to it.
		aside := filepath.Join(t.TempDir(), "theirs")
		if err := os.Rename(p, aside); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(aside, p); err != nil {
			t.Fatal(err)
		}
		if got, err := c.BlobPath(d); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("verified %v: BlobPath of a link = %q, %v; want ErrNotFound", verified, got, err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("verified %v: the link is still in the cache: %v", verified, err)
		}
		if b, err := os.ReadFile(aside); err != nil || !bytes.Equal(b, content) {
			t.Errorf("verified %v: the file the link pointed to: %q, %v", verified, b, err)
		}
	}
}

// touch marks the entry at its path used, not what a symbolic link put
// there since the entry was read points to: a name replaced between a
// lookup's read (through a kept pack, without opening it) and its touch
// would otherwise let a member of a shared cache's group set the times of
// any file the reader may write.
func TestTouchDoesNotFollowALink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-3 * touchInterval).Truncate(time.Second)
	if err := os.Chtimes(victim, old, old); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(victim)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "entry")
	if err := os.Symlink(victim, p); err != nil {
		t.Fatal(err)
	}
	touch(p, fi)
	if now, err := os.Stat(victim); err != nil || !now.ModTime().Equal(old) {
		t.Errorf("the link's target was touched: %v, %v", now.ModTime(), err)
	}
}
