package main

import (
	"crypto/sha1"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/exec/batch/standin"
	"github.com/hepbuild/hepbuild/internal/testserver"
)

// TestBatchJobsNeverCarryTheRemotePassword: a --remote-cache URL may hold
// a password (grpc://user:password@host, as Bazel sends it). Job scripts,
// submit files, the batch system's job records and the worker's process
// arguments are read by others: the password must reach none of them (a
// credential reaches jobs only from a file, as --remote-header's do), and
// a build that cannot hand it over safely says so, without printing it.
// Runs against the HTCondor stand-in (exec/batch/standin): the real tools
// cannot be installed here.
func TestBatchJobsNeverCarryTheRemotePassword(t *testing.T) {
	const password = "s3cret-in-url"
	dir := t.TempDir()
	sum := sha1.Sum([]byte(password))
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("hep:{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := testserver.StartBazelRemote(t, "--htpasswd_file", htpasswd)
	state := standin.Install(t, "htcondor")
	t.Setenv(asMainEnv, "1")
	root, diskCache := clone(t, map[string]string{"BUILD": `task(name = "x", outs = ["x.txt"], cmd = "echo x > $@")`})
	r := hepbuild(t, root, "//:x", "--disk-cache", diskCache, "--remote-cache", "grpc://hep:"+password+"@"+s.GRPCAddr,
		"--executor=htcondor", "--batch-poll=300ms", "--batch-window=200ms", "--progress=plain")
	if strings.Contains(r.stderr, password) {
		t.Errorf("the password was printed:\n%s", r.stderr)
	}
	if r.code != 0 && (r.code != 2 || !strings.Contains(r.stderr, "--remote-cache")) {
		t.Errorf("exit %d, want 0, or 2 with an error naming --remote-cache:\n%s", r.code, r.stderr)
	}
	for _, c := range standin.Calls(t, state) {
		if strings.Contains(strings.Join(c, " "), password) {
			t.Errorf("the password is in the arguments of %s", c[0])
		}
	}
	base := strings.TrimSpace(hepbuild(t, root, "info", "output_base").stdout)
	for _, d := range []string{state, filepath.Join(base, "batch")} {
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				if b, _ := os.ReadFile(p); strings.Contains(string(b), password) {
					t.Errorf("the password is written into %s", p)
				}
			}
			return nil
		})
	}
}
