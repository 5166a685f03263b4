package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/internal/shell"
)

// BenchmarkTaskCPU runs the peer workload's kind of command as a task runs
// it, and reports the CPU each costs: the command's own (what the
// sandbox measured of it) and hepbuild's (the test process and its
// helpers: everything else). With bash=on the take-over is off.
func BenchmarkTaskCPU(b *testing.B) {
	for _, bash := range []bool{false, true} {
		for _, mk := range []func(string) Strategy{
			func(string) Strategy { return None{} },
			func(base string) Strategy {
				l, err := NewLinux(filepath.Join(base, "sandbox"), base)
				if err != nil {
					return nil
				}
				return l
			},
		} {
			root, base := b.TempDir(), b.TempDir()
			st := mk(base)
			if st == nil {
				continue
			}
			writeFile(&testing.T{}, root, "raw/in.txt", "x\n", 0o644)
			b.Run(fmt.Sprintf("%s/bash=%v", st.Name(), bash), func(b *testing.B) {
				defer func(was bool) { takeOverTasks = was }(takeOverTasks)
				takeOverTasks = !bash
				before := processCPU()
				var commands time.Duration
				for i := 0; i < b.N; i++ {
					res, err := st.Run(context.Background(), Spec{
						ExecRoot: root,
						Argv:     shell.TaskArgv("sed 's/$/ s0/' raw/in.txt > out/x.txt"),
						Env:      hostEnv(),
						Inputs:   []string{"raw/in.txt"},
						Outputs:  []string{"out/x.txt"},
					})
					if err != nil || !res.Success() {
						b.Fatalf("%+v %v", res, err)
					}
					commands += res.CPU
				}
				var helpers time.Duration
				reapers.mu.Lock()
				for _, r := range reapers.idle {
					helpers += ownCPU(r.cmd.Process.Pid)
				}
				reapers.mu.Unlock()
				// The helpers' time counts once they have been waited for.
				st.(interface{ Close() error }).Close()
				b.ReportMetric(float64(helpers.Microseconds())/float64(b.N), "µs-reaper-cpu/op")
				total := processCPU() - before
				b.ReportMetric(float64(commands.Microseconds())/float64(b.N), "µs-command-cpu/op")
				b.ReportMetric(float64((total-commands).Microseconds())/float64(b.N), "µs-hepbuild-cpu/op")
			})
		}
	}
}

// ownCPU is the CPU time of process pid itself, from /proc.
func ownCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return time.Duration(u+s) * 10 * time.Millisecond
}

// processCPU is the CPU time of this process and of the children it waited for.
func processCPU() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	d := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return d(self.Utime) + d(self.Stime) + d(children.Utime) + d(children.Stime)
}
