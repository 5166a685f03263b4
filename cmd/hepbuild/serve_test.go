package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// startServe starts `hepbuild serve` as a real process on a free loopback
// port and returns its URL (without the final slash); it is stopped with
// the test.
func startServe(t *testing.T, args ...string) (url string, stop func() (int, string)) {
	t.Helper()
	dir := t.TempDir()
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "history.db")}, args...)
	cmd, stderr := startAndWaitFor(t, dir, " (history in ", args...)
	m := regexp.MustCompile(`hepbuild serve: (http://127\.0\.0\.1:\d+)/ \(history in `).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("hepbuild serve printed no address:\n%s", stderr.String())
	}
	return m[1], func() (int, string) {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		return waitExit(t, cmd, stderr), stderr.String()
	}
}

func TestServePingsAndStopsOnSIGTERM(t *testing.T) {
	const token = "tok-3f9a1c-for-the-group"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, stop := startServe(t, "--token-file", tokenFile)
	ping := func(auth string) int {
		req, _ := http.NewRequest("GET", url+api.PathPing, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ping(token); code != http.StatusNoContent {
		t.Errorf("ping with the token: %d, want 204", code)
	}
	if code := ping(""); code != http.StatusUnauthorized {
		t.Errorf("ping without the token: %d, want 401", code)
	}
	code, stderr := stop()
	if code != exitOK {
		t.Errorf("hepbuild serve after SIGTERM: exit %d, want 0\n%s", code, stderr)
	}
	if strings.Contains(stderr, token) {
		t.Errorf("hepbuild serve printed its token:\n%s", stderr)
	}
}

func TestServeWithoutTokenSaysLoopbackOnly(t *testing.T) {
	url, stop := startServe(t)
	resp, err := http.Get(url + api.PathPing)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("ping: %d, want 204", resp.StatusCode)
	}
	code, stderr := stop()
	if code != exitOK || !strings.Contains(stderr, "loopback only") {
		t.Errorf("exit %d, want 0 and a word that it listens on loopback only:\n%s", code, stderr)
	}
}

func TestServeRefusesAnOpenAddressWithoutToken(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"serve", "--addr", "0.0.0.0:0", "--db", filepath.Join(dir, "h.db")},
		{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "h.db"), "--tls-cert", filepath.Join(dir, "cert.pem")},
		{"serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "h.db"), "--token-file", filepath.Join(dir, "missing")},
	} {
		r := hepbuild(t, dir, args...)
		if r.code != exitBadInput {
			t.Errorf("hepbuild %v: exit %d, want %d\n%s", args, r.code, exitBadInput, r.stderr)
		}
	}
	r := hepbuild(t, dir, "serve", "--addr", "0.0.0.0:0", "--db", filepath.Join(dir, "h.db"))
	if !strings.Contains(r.stderr, "loopback") {
		t.Errorf("hepbuild serve on 0.0.0.0 without a token does not say why:\n%s", r.stderr)
	}
}
