package starlark

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

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
	cmd := exec.Command("python3", gen, dir, strconv.Itoa(d), strconv.Itoa(f), strconv.Itoa(s))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("gen.py: %v\n%s", err, out)
	}
	return dir
}

// BenchmarkLoadAnalyze measures loading plus analysis of the peer workload at
// 2k, 20k and 200k actions; it reports actions per second and bytes allocated.
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
				l, err := NewLoader(dir, nil)
				if err != nil {
					b.Fatal(err)
				}
				g, err := l.Analyze([]graph.Label{graph.MustParseLabel("//:all")})
				if err != nil {
					b.Fatal(err)
				}
				n = len(g.Actions)
			}
			b.ReportMetric(float64(n), "actions")
		})
	}
}
