package reapi

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestDecodeAllStopsAtTheSize: a batch response's zstd blob that expands
// far beyond its digest's size (a few hundred KiB of zstd can claim
// gigabytes) is refused without decompressing more than the size.
func TestDecodeAllStopsAtTheSize(t *testing.T) {
	var bomb bytes.Buffer
	enc, err := zstd.NewWriter(&bomb, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for i := 0; i < 256; i++ {
		if _, err := enc.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := decodeAll(bomb.Bytes(), 1000); err == nil {
		t.Fatal("a blob of 256 MiB was taken for one of 1000 bytes")
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
		t.Errorf("refusing the blob allocated %d MiB", n>>20)
	}
}
