package main

import (
	"fmt"
	"io"
	"net"

	"bytes"
	"context"
	"github.com/hepbuild/hepbuild/exec/server"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// The builds of the peer workload (gen.py), end to end through the command
// line: bench/peers.sh compares them with ninja and the others; these
// benchmarks are for profiling (-cpuprofile, -memprofile) and for watching
// one number while changing the code.

// genWorkspace writes gen.py's workload of D datasets x F files x S shifts
// into a fresh folder.
func genWorkspace(b testing.TB, d, f, s int) string {
	b.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		b.Skip("python3 not installed")
	}
	gen := os.Getenv("HEPBUILD_GEN")
	if gen == "" {
		gen = filepath.Join("..", "..", "..", "shared", "bench", "gen.py")
	}
	if _, err := os.Stat(gen); err != nil {
		b.Skipf("peer workload generator not found at %s (set HEPBUILD_GEN)", gen)
	}
	dir := filepath.Join(b.TempDir(), "ws")
	out, err := exec.Command("python3", gen, dir, strconv.Itoa(d), strconv.Itoa(f), strconv.Itoa(s)).CombinedOutput()
	if err != nil {
		b.Fatalf("gen.py: %v\n%s", err, out)
	}
	return dir
}

// benchHepbuild runs the command line in dir with its own cache home and fails
// the benchmark on a non-zero exit.
func benchHepbuild(b *testing.B, dir, cacheHome string, args ...string) {
	b.Helper()
	b.Setenv("XDG_CACHE_HOME", cacheHome)
	var stdout, stderr bytes.Buffer
	ctx := context.Background()
	if code := run(ctx, args, &env{stdout: &stdout, stderr: &stderr, ctx: ctx, cwd: dir}); code != 0 {
		b.Fatalf("hepbuild %v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	}
}

var benchSizes = []struct {
	name    string
	d, f, s int
}{{"2k", 10, 50, 4}, {"20k", 40, 125, 4}}

// BenchmarkNullBuild is a build with nothing to do, loading and analysis
// included: the target is under 0.3 s at 20k actions.
func BenchmarkNullBuild(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			dir := genWorkspace(b, size.d, size.f, size.s)
			home := b.TempDir()
			benchHepbuild(b, dir, home, "build", "//:all", "-j2", "--progress=none")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchHepbuild(b, dir, home, "build", "//:all", "-j2", "--progress=none")
			}
		})
	}
}

// BenchmarkFullBuild builds the 2k workload from scratch (an empty cache
// and output base) at -j2; its profile shows what hepbuild spends per action
// beyond the commands themselves.
func BenchmarkFullBuild(b *testing.B) {
	size := benchSizes[0]
	src := genWorkspace(b, size.d, size.f, size.s)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		home := b.TempDir()
		dir := filepath.Join(b.TempDir(), "ws")
		if out, err := exec.Command("cp", "-r", src, dir).CombinedOutput(); err != nil {
			b.Fatalf("copying the workspace: %v\n%s", err, out)
		}
		b.StartTimer()
		benchHepbuild(b, dir, home, "build", "//:all", "-j2", "--progress=none")
	}
}

// BenchmarkCacheRebuild builds the 2k workload again after removing the
// output tree: every action is restored from the disk cache.
func BenchmarkCacheRebuild(b *testing.B) {
	size := benchSizes[0]
	dir := genWorkspace(b, size.d, size.f, size.s)
	home := b.TempDir()
	benchHepbuild(b, dir, home, "build", "//:all", "-j2", "--progress=none")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		out, err := os.Readlink(filepath.Join(dir, "hepbuild-out"))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(out); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		benchHepbuild(b, dir, home, "build", "//:all", "-j2", "--progress=none")
	}
}

// BenchmarkFullBuildServed is BenchmarkFullBuild reporting to a `hepbuild
// serve` in this process (its profile holds both sides); -coordinate=false
// leaves the claims out.
func BenchmarkFullBuildServed(b *testing.B) {
	size := benchSizes[0]
	src := genWorkspace(b, size.d, size.f, size.s)
	srv, err := server.New(server.Options{DB: filepath.Join(b.TempDir(), "history.db"), Log: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	for _, coordinate := range []bool{false, true} {
		b.Run(fmt.Sprintf("coordinate=%v", coordinate), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				home := b.TempDir()
				dir := filepath.Join(b.TempDir(), "ws")
				if out, err := exec.Command("cp", "-r", src, dir).CombinedOutput(); err != nil {
					b.Fatalf("copying the workspace: %v\n%s", err, out)
				}
				b.StartTimer()
				benchHepbuild(b, dir, home, "build", "//:all", "-j2", "--progress=none", "--server", url, fmt.Sprintf("--coordinate=%v", coordinate))
			}
		})
	}
}
