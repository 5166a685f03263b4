// Package remotetest checks that a remote.Remote behaves as the tiered
// cache expects. Every protocol's tests run it against a real server.
package remotetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
)

// Blob returns n random bytes and their digest: every run of a test uses
// blobs no earlier run stored.
func Blob(t testing.TB, n int) ([]byte, cache.Digest) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, cache.FromBytes(b)
}

// Run checks r: blobs small and large round-trip, absent ones are
// cache.ErrNotFound, FindMissing and the batch calls agree with Get and
// Put, a Put whose content does not match its digest is refused, and
// action results round-trip.
func Run(t *testing.T, r remote.Remote) {
	ctx := context.Background()
	t.Run("Check", func(t *testing.T) {
		if _, err := r.Check(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Absent", func(t *testing.T) {
		_, d := Blob(t, 100)
		if _, err := r.Get(ctx, d); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Get of an absent blob: %v, want cache.ErrNotFound", err)
		}
		if ok, err := r.Contains(ctx, d); ok || err != nil {
			t.Errorf("Contains of an absent blob: %v, %v", ok, err)
		}
		if _, err := r.GetActionResult(ctx, d); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("GetActionResult of an absent action: %v, want cache.ErrNotFound", err)
		}
	})
	for _, size := range []int{0, 1, 1000, int(r.BatchLimit()) + 1, 9 << 20} {
		b, d := Blob(t, size)
		t.Run("PutGet/"+d.String(), func(t *testing.T) {
			if err := r.Put(ctx, d, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			rc, err := r.Get(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, b) {
				t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(b))
			}
			if ok, err := r.Contains(ctx, d); !ok || err != nil {
				t.Errorf("Contains after Put: %v, %v", ok, err)
			}
		})
	}
	t.Run("PutWrongContent", func(t *testing.T) {
		b, _ := Blob(t, 1000)
		_, other := Blob(t, 1000)
		if err := r.Put(ctx, other, bytes.NewReader(b)); err == nil {
			t.Error("Put of content that does not match its digest succeeded")
		}
		if ok, _ := r.Contains(ctx, other); ok {
			t.Error("a blob put with the wrong content is present")
		}
	})
	t.Run("Batches", func(t *testing.T) {
		blobs := map[cache.Digest][]byte{}
		var all []cache.Digest
		for i := 0; i < 300; i++ {
			b, d := Blob(t, 10+i)
			blobs[d] = b
			all = append(all, d)
		}
		_, absent := Blob(t, 77)
		missing, err := r.FindMissing(ctx, append(all, absent))
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) != len(all)+1 {
			t.Fatalf("FindMissing before PutBatch: %d missing, want %d", len(missing), len(all)+1)
		}
		if err := r.PutBatch(ctx, blobs); err != nil {
			t.Fatal(err)
		}
		missing, err = r.FindMissing(ctx, append(all, absent))
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) != 1 || missing[0] != absent {
			t.Fatalf("FindMissing after PutBatch: %v, want [%v]", missing, absent)
		}
		got, err := r.GetBatch(ctx, append(all, absent))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(all) {
			t.Fatalf("GetBatch: %d blobs, want %d", len(got), len(all))
		}
		for d, b := range blobs {
			if !bytes.Equal(got[d], b) {
				t.Fatalf("GetBatch: blob %v differs", d)
			}
		}
	})
	t.Run("ActionResult", func(t *testing.T) {
		b, d := Blob(t, 500)
		if err := r.Put(ctx, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		_, key := Blob(t, 64)
		want := &repb.ActionResult{
			OutputFiles: []*repb.OutputFile{{Path: "out/a.txt", Digest: d.ToProto(), IsExecutable: true}},
			ExitCode:    0,
		}
		if err := r.PutActionResult(ctx, key, want); err != nil {
			t.Fatal(err)
		}
		got, err := r.GetActionResult(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.GetOutputFiles()) != 1 || !proto.Equal(got.GetOutputFiles()[0], want.OutputFiles[0]) {
			t.Errorf("GetActionResult: %v, want %v", got, want)
		}
	})
}
