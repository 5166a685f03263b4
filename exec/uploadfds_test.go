package exec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
)

type diskInputs string

func (root diskInputs) Digest(a Artifact) (cache.Digest, bool, error) {
	d, err := cache.FromFile(filepath.Join(string(root), a.Path))
	return d, false, err
}

// A fan-out sent to a batch system starts every action's upload at once
// (offloaded actions hold no job slot): hundreds of actions, each opening
// up to 16 input files at a time, ran out of file descriptors on a login
// node's limit, and the actions failed with "too many open files". The
// uploads of all actions share one bound on open files.
func TestUploadsShareABoundOnOpenFiles(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	c, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	const actions, files = 80, 20
	type job struct {
		a   *Action
		key *Key
	}
	var jobs []job
	for i := 0; i < actions; i++ {
		a := &Action{Kind: KindRun, Argv: []string{"true"}, Outputs: []Artifact{{Path: fmt.Sprintf("hepbuild-out/o%d", i)}}}
		for k := 0; k < files; k++ {
			p := fmt.Sprintf("in/%d/%d.txt", i, k)
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, p), []byte(strings.Repeat(p, 20000)), 0o644); err != nil {
				t.Fatal(err)
			}
			a.Inputs = append(a.Inputs, Artifact{Path: p, Source: true})
		}
		key, err := ComputeKey(a, diskInputs(root))
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{a, key})
	}
	// A limit of 256 open files, as on many login nodes' defaults.
	lim := syscall.Rlimit{Cur: 256, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	var wg sync.WaitGroup
	errs := make(chan error, actions)
	for _, j := range jobs {
		wg.Add(1)
		go func(j job) {
			defer wg.Done()
			if _, err := UploadInputs(context.Background(), c, j.a, j.key, root, diskInputs(root)); err != nil {
				errs <- err
			}
		}(j)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if strings.Contains(err.Error(), "too many open files") {
			t.Fatalf("an upload ran out of file descriptors: %v", err)
		}
		t.Error(err)
	}
}
