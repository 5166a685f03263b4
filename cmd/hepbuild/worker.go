package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/exec/local"
	"github.com/hepbuild/hepbuild/exec/worker"
	"github.com/hepbuild/hepbuild/sandbox"
)

// WorkerCmd runs actions by their digests on a batch node.
type WorkerCmd struct {
	DiskCache pathValue `name:"disk-cache" placeholder:"DIR" help:"The cache holding the actions and their inputs, on a file system this node shares with the submitting machine (when no --remote-cache is given)."`
	RemoteFlags
	SigningKey pathValue `name:"cache-signing-key" placeholder:"FILE" help:"Sign the results written to the disk cache with the secret in FILE, as the submitting build does."`
	SandboxFlags
	WorkDir pathValue `name:"work-dir" placeholder:"DIR" help:"A node-local scratch folder for the actions' exec roots (default: $TMPDIR, else /tmp)."`
	Token   string    `name:"token" placeholder:"TOKEN" help:"The submission's token, under which failures are recorded for the submitting build."`
	Actions []string  `arg:"" name:"action" help:"The actions to run, each ACTION-DIGEST:SPEC-DIGEST (HASH/SIZE:HASH/SIZE)."`
}

// Run runs the actions and exits 0 when all succeeded, 1 when one ran and
// failed, 3 when one could not be run.
func (c *WorkerCmd) Run(e *env) error {
	refs := make([]worker.Ref, 0, len(c.Actions))
	for _, a := range c.Actions {
		r, err := worker.ParseRef(a)
		if err != nil {
			return badInput("%v", err)
		}
		refs = append(refs, r)
	}
	if (c.DiskCache == "") == (c.RemoteCache == "") {
		return badInput("hepbuild worker: give exactly one of --disk-cache DIR (on a shared file system) and --remote-cache URL")
	}
	token := c.Token
	if token == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		token = hex.EncodeToString(b[:])
	}
	scratch := string(c.WorkDir)
	if scratch == "" {
		scratch = os.TempDir()
	}
	dir, err := os.MkdirTemp(scratch, "hepbuild-worker-")
	if err != nil {
		return fmt.Errorf("hepbuild worker: scratch folder: %w", err)
	}
	defer cache.RemoveTree(dir)

	var c0 cache.Cache
	envRoot := filepath.Join(defaultCacheHome(), "environments")
	if c.RemoteCache != "" {
		r, opts, err := c.RemoteFlags.open()
		if err != nil {
			return err
		}
		defer r.Close()
		if _, err := checkRemote(e.ctx, r, opts); err != nil {
			return workerCannot("the remote cache %s: %v", r.Name(), err)
		}
		c0 = r
	} else {
		var opts []disk.Option
		if c.SigningKey != "" {
			key, err := disk.ReadSigningKey(string(c.SigningKey))
			if err != nil {
				return badInput("--cache-signing-key: %v", err)
			}
			opts = append(opts, disk.WithSigningKey(key))
		}
		dc, err := disk.Open(string(c.DiskCache), opts...)
		if err != nil {
			return workerCannot("the disk cache %s: %v", c.DiskCache, err)
		}
		c0 = dc
		envRoot = filepath.Join(string(c.DiskCache), "environments")
	}
	hidden := string(c.DiskCache)
	if hidden == "" {
		hidden = dir
	}
	strat, err := c.strategy(filepath.Join(dir, "base"), hidden, nil)
	if err != nil {
		return err
	}
	if cl, ok := strat.(interface{ Close() error }); ok {
		defer cl.Close()
	}
	w := &worker.Worker{
		Cache:    c0,
		Executor: local.New(strat, local.WithEnvironments(sandbox.NewEnvironments(envRoot))),
		Dir:      dir,
		Token:    token,
		Out:      e.stdout,
	}
	// Exit status 1: an action ran and failed (recorded in the cache);
	// 3: one could not be run (cache, description, node); 8: interrupted.
	switch w.Run(e.ctx, refs) {
	case worker.SomeFailed:
		return silentError{&buildFailedError{"an action failed"}}
	case worker.CouldNotRun:
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		return silentError{&workerError{"an action could not be run"}}
	}
	return nil
}

func workerCannot(format string, args ...any) error {
	return &workerError{fmt.Sprintf("hepbuild worker: "+format, args...)}
}

// workerError is a worker that could not start: exit status 3.
type workerError struct{ msg string }

func (e *workerError) Error() string { return e.msg }
