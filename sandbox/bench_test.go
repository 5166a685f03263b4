package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkStrategies measures the cost of one cheap action per strategy,
// with one input (a select step) and with fifty (a histogram step).
func BenchmarkStrategies(b *testing.B) {
	for _, inputs := range []int{1, 50} {
		root, base := b.TempDir(), b.TempDir()
		var ins []string
		for i := 0; i < inputs; i++ {
			p := fmt.Sprintf("raw/f%d.txt", i)
			writeFile(&testing.T{}, root, p, "x\n", 0o644)
			ins = append(ins, p)
		}
		list := []Strategy{None{}, NewSymlink(filepath.Join(base, "sandbox"))}
		if l, err := NewLinux(filepath.Join(base, "sandbox"), base); err == nil {
			list = append(list, l)
		}
		for _, st := range list {
			b.Run(fmt.Sprintf("%s/inputs=%d", st.Name(), inputs), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					res, err := st.Run(context.Background(), Spec{
						ExecRoot: root,
						Argv:     []string{"/bin/bash", "-c", "cat raw/f0.txt > out/x.txt"},
						Env:      hostEnv(),
						Inputs:   ins,
						Outputs:  []string{"out/x.txt"},
					})
					if err != nil || !res.Success() {
						b.Fatalf("%+v %v", res, err)
					}
				}
			})
		}
	}
}
