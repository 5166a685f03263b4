package starlark

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// benchWorkspace generates the shared peer workload (gen.py D F S) once per size.
func benchWorkspace(b *testing.B, d, f, s int) string {
	gen := os.Getenv("HEPBUILD_GEN")
	if gen == "" {
		gen = filepath.Join("..", "..", "shared", "bench", "gen.py")
	}
	if _, err := os.Stat(gen); err != nil {
		b.Skipf("peer workload generator not found at %s (set HEPBUILD_GEN)", gen)
	}
	dir := filepath.Join(b.TempDir(), "ws")
	cmd := osexec.Command("python3", gen, dir, strconv.Itoa(d), strconv.Itoa(f), strconv.Itoa(s))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("gen.py: %v\n%s", err, out)
	}
	return dir
}

// BenchmarkLoadAnalyze measures loading plus analysis of the peer workload at
// 2k, 20k and 200k actions; it reports actions per second, bytes allocated,
// and the heap the loaded packages and the action graph keep per action
// (kept-B/action), which decides how large a workspace fits in memory.
func BenchmarkLoadAnalyze(b *testing.B) {
	for _, size := range []struct {
		name    string
		d, f, s int
	}{{"2k", 10, 50, 4}, {"20k", 40, 125, 4}, {"200k", 100, 500, 4}} {
		b.Run(size.name, func(b *testing.B) {
			dir := benchWorkspace(b, size.d, size.f, size.s)
			b.ReportAllocs()
			b.ResetTimer()
			var n int
			for i := 0; i < b.N; i++ {
				_, g := loadAnalyze(b, dir)
				n = len(g.Actions)
			}
			b.StopTimer()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			l, g := loadAnalyze(b, dir)
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(l)
			runtime.KeepAlive(g)
			b.ReportMetric(float64(n), "actions")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "kept-B/action")
		})
	}
}

func loadAnalyze(b *testing.B, dir string) (*Loader, *exec.Graph) {
	l, err := NewLoader(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	g, err := l.Analyze([]graph.Label{graph.MustParseLabel("//:all")})
	if err != nil {
		b.Fatal(err)
	}
	return l, g
}

// BenchmarkAnalyze measures analysis alone of every target of the peer
// workload at 20k and 200k actions, its package loaded once, as `build
// //:all` analyses it.
func BenchmarkAnalyze(b *testing.B) {
	for _, size := range []struct {
		name    string
		d, f, s int
	}{{"20k", 40, 125, 4}, {"200k", 100, 500, 4}} {
		b.Run(size.name, func(b *testing.B) {
			dir := benchWorkspace(b, size.d, size.f, size.s)
			l, err := NewLoader(dir, nil)
			if err != nil {
				b.Fatal(err)
			}
			p, err := l.Package("", "")
			if err != nil {
				b.Fatal(err)
			}
			var targets []*graph.Target
			for _, name := range p.Order {
				if t := p.Targets[name]; t.IsRule() {
					targets = append(targets, t)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.AnalyzeTargets(targets); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
