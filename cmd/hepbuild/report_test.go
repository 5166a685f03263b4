package main

import (
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/exec/notify/notifytest"
	"github.com/hepbuild/hepbuild/exec/server/api"
	"github.com/hepbuild/hepbuild/exec/server/report/reporttest"
)

// reportedWorkspace is a workspace with a chain of two actions and one
// that fails, and a token file; the helpers serve any recorder or server.
func reportedWorkspace(t *testing.T) (root, tokenFile string) {
	t.Helper()
	root = testWorkspace(t, map[string]string{
		"BUILD":  chain + `task(name = "fails", outs = ["f"], cmd = "echo oops >&2; exit 3")` + "\n",
		"in.txt": "hello\n", "other.txt": "x\n",
	})
	tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok-123-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, tokenFile
}

var pageLine = regexp.MustCompile(`INFO: build reported to (\S+)/builds/([0-9a-f]{32})\n`)

// TestServerFlagReportsBuild: a build with --server reports its start,
// plan, events, action details and end to the server, prints its page's
// address, sends the token, and keeps credentials out of its record; a
// build with nothing to do is reported without actions, a failed one
// with its failure.
func TestServerFlagReportsBuild(t *testing.T) {
	rec := &reporttest.Recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	root, tokenFile := reportedWorkspace(t)

	r := hepbuild(t, root, "build", "--server="+srv.URL, "--server-token-file", tokenFile, "--progress=none", "//:b")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	m := pageLine.FindStringSubmatch(r.stderr)
	if m == nil || m[1] != srv.URL {
		t.Fatalf("no page address of %s in:\n%s", srv.URL, r.stderr)
	}
	if strings.Contains(r.stderr, "WARNING") || strings.Contains(r.stderr, "tok-123") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	for _, q := range rec.Requests() {
		if q.Auth != "Bearer tok-123-secret" {
			t.Errorf("%s sent Authorization %q", q.Kind, q.Auth)
		}
	}
	b := rec.Build(m[2])
	if b.Start == nil || b.Start.Total != 2 || !slices.Equal(b.Start.Targets, []string{"//:b"}) || b.Start.Workspace != root || b.Start.User == "" {
		t.Fatalf("start %+v", b.Start)
	}
	if got := strings.Join(b.Start.Command, " "); got != "build --server="+srv.URL+" --server-token-file REDACTED --progress=none //:b" {
		t.Errorf("command line on record: %q", got)
	}
	if len(b.Plan) != 2 || b.Plan[1].Target != "//:b" || !slices.Equal(b.Plan[1].Deps, []int32{0}) {
		t.Errorf("plan %+v", b.Plan)
	}
	if len(b.Actions) != 2 {
		t.Fatalf("details of %d actions, want 2", len(b.Actions))
	}
	for _, a := range b.Actions {
		if !slices.Equal(a.Reasons, []string{"never run here before"}) || a.Where != "local slot 1" && a.Where != "local slot 2" || a.Key == "" || a.Command == "" {
			t.Errorf("action %d: reasons %q, where %q, key %q, command %q", a.ID, a.Reasons, a.Where, a.Key, a.Command)
		}
	}
	if b.End == nil || b.End.Outcome != api.OutcomeSuccess || b.End.ExitCode != 0 || b.End.Counts.Executed != 2 || b.End.Counts.Total != 2 || len(b.End.CriticalPath) != 2 {
		t.Errorf("end %+v", b.End)
	}

	// Nothing to do: a build without actions.
	r = hepbuild(t, root, "build", "--server="+srv.URL, "--server-token-file", tokenFile, "--progress=none", "//:b")
	m = pageLine.FindStringSubmatch(r.stderr)
	if r.code != 0 || m == nil {
		t.Fatalf("null build: exit %d\n%s", r.code, r.stderr)
	}
	// (A file written within the stamp's time granularity takes the
	// full path instead: every action up to date.)
	if b := rec.Build(m[2]); b.Start == nil || b.End == nil || b.End.Outcome != api.OutcomeSuccess || b.Start.Total != b.End.Counts.UpToDate || b.End.Counts.Executed != 0 {
		t.Errorf("build with nothing to do reported as %+v", b)
	}

	// A failure: the outcome, the exit code, the log.
	r = hepbuild(t, root, "build", "--server="+srv.URL, "--server-token-file", tokenFile, "--progress=none", "//:fails")
	m = pageLine.FindStringSubmatch(r.stderr)
	if r.code != 1 || m == nil {
		t.Fatalf("failing build: exit %d\n%s", r.code, r.stderr)
	}
	b = rec.Build(m[2])
	if b.End == nil || b.End.Outcome != api.OutcomeFailed || b.End.ExitCode != 1 || b.End.Counts.Failed != 1 || !strings.Contains(b.End.Error, "exit status 3") {
		t.Errorf("failed build's end %+v", b.End)
	}
	if len(b.Actions) != 1 || !strings.Contains(b.Actions[0].Log, "oops") {
		t.Errorf("failed action's details %+v", b.Actions)
	}
	// A BUILD error stops before the build is reported.
	n := len(rec.Requests())
	if r := hepbuild(t, root, "build", "--server="+srv.URL, "//:nope"); r.code != 2 || len(rec.Requests()) != n {
		t.Errorf("bad target: exit %d, %d requests", r.code, len(rec.Requests())-n)
	}
}

// TestServerFlagServerDown: a server that is not there costs one warning
// naming it; the build succeeds.
func TestServerFlagServerDown(t *testing.T) {
	srv := httptest.NewServer(&reporttest.Recorder{})
	url := srv.URL
	srv.Close()
	root, tokenFile := reportedWorkspace(t)
	r := hepbuild(t, root, "build", "--server="+url, "--server-token-file="+tokenFile, "--progress=plain", "//:b")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if n := strings.Count(r.stderr, "WARNING"); n != 1 || !strings.Contains(r.stderr, strings.TrimPrefix(url, "http://")) || strings.Contains(r.stderr, "tok-123") {
		t.Errorf("want one warning naming %s, without the token:\n%s", url, r.stderr)
	}
}

// TestServerFlagBadValues: bad values are refused before anything is
// loaded, without quoting a secret.
func TestServerFlagBadValues(t *testing.T) {
	root, tokenFile := reportedWorkspace(t)
	twoLines := filepath.Join(t.TempDir(), "two")
	if err := os.WriteFile(twoLines, []byte("tok-a\ntok-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args   []string
		want   string
		secret string
	}{
		{[]string{"--server=ftp://host/x"}, "--server ftp://host/x: want http://", ""},
		{[]string{"--server=http://ana:pw-secret@host:1"}, "--server-token-file", "pw-secret"},
		{[]string{"--server-token-file=" + tokenFile}, "--server-token-file goes with --server", "tok-123"},
		{[]string{"--server=http://127.0.0.1:1", "--server-token-file=" + twoLines}, "one token on one line", "tok-a"},
		{[]string{"--notify=hook-secret-xyz"}, "--notify (the first)", "hook-secret-xyz"},
	}
	for _, c := range cases {
		r := hepbuild(t, root, append(append([]string{"build"}, c.args...), "//:b")...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || (c.secret != "" && strings.Contains(r.stderr, c.secret)) {
			t.Errorf("%v: exit %d, want 2 with %q and without %q:\n%s", c.args, r.code, c.want, c.secret, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "hepbuild-out")); err == nil {
		t.Error("a refused flag value still built")
	}
}

// TestServerFlagRedactsCommandLine: the command line on record keeps no
// credential: values of flags named like them, passwords in URLs.
func TestServerFlagRedactsCommandLine(t *testing.T) {
	in := []string{"build", "--server-token-file", "/home/ana/.tok", "--notify=slack+https://hooks.slack.com/services/T/B/x",
		"--notify", "@/home/ana/hook", "--remote-header=authorization=Bearer abc", "--cache-signing-key=/k",
		"--storage-token-file=/t", "--remote-cache=https://ana:pw@cache:9092", "-k", "--jobs=4", "//ana:all", "--", "-//ana/attic/..."}
	want := []string{"build", "--server-token-file", "REDACTED", "--notify=REDACTED",
		"--notify", "REDACTED", "--remote-header=REDACTED", "--cache-signing-key=REDACTED",
		"--storage-token-file=REDACTED", "--remote-cache=https://cache:9092", "-k", "--jobs=4", "//ana:all", "--", "-//ana/attic/..."}
	if got := redactArgs(in); !slices.Equal(got, want) {
		t.Errorf("redactArgs:\n got %q\nwant %q", got, want)
	}
}

// TestFlagOutcomeOfExitCode: the outcome a server and a notification are
// told is the exit code's.
func TestFlagOutcomeOfExitCode(t *testing.T) {
	for code, want := range map[int]string{exitOK: "success", exitBuildFailed: "failed", exitInterrupted: "interrupted", exitBadInput: "error", exitInfra: "error"} {
		if got := outcomeOf(code); got != want {
			t.Errorf("outcomeOf(%d) = %q, want %q", code, got, want)
		}
	}
}

// TestServerFlagNotifies: --notify tells a webhook how the build ended:
// what was built, the outcome and exit code, the counts, and the build's
// page with --server; a failed build too, without a server.
func TestServerFlagNotifies(t *testing.T) {
	rec := &reporttest.Recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	hook := notifytest.New(t)
	root, _ := reportedWorkspace(t)
	spec := "webhook+" + hook.URL + "/hook/s3cr3t"
	r := hepbuild(t, root, "build", "--server="+srv.URL, "--notify="+spec, "--progress=none", "//:b")
	m := pageLine.FindStringSubmatch(r.stderr)
	if r.code != 0 || m == nil {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	type news struct {
		Targets  []string
		Outcome  string
		ExitCode int `json:"exit_code"`
		Counts   struct{ Total, Executed, Failed int }
		Link     string
	}
	got := func(i int) news {
		t.Helper()
		reqs := hook.Requests()
		if len(reqs) != i+1 {
			t.Fatalf("%d notifications, want %d", len(reqs), i+1)
		}
		var n news
		if err := json.Unmarshal(reqs[i].Body, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := got(0)
	if !slices.Equal(n.Targets, []string{"//:b"}) || n.Outcome != "success" || n.ExitCode != 0 || n.Counts.Total != 2 || n.Counts.Executed != 2 || n.Link != srv.URL+"/builds/"+m[2] {
		t.Errorf("notification %+v", n)
	}
	if b := rec.Build(m[2]); b.Start == nil || strings.Contains(strings.Join(b.Start.Command, " "), "s3cr3t") {
		t.Errorf("the notification's secret is on record: %q", b.Start.Command)
	}

	r = hepbuild(t, root, "build", "--notify="+spec, "--progress=none", "//:fails")
	if r.code != 1 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if n := got(1); n.Outcome != "failed" || n.ExitCode != 1 || n.Counts.Failed != 1 || n.Link != "" {
		t.Errorf("failed build's notification %+v", n)
	}

	// A destination that fails is a warning, not a failed build.
	hook.Answer(500, "no")
	r = hepbuild(t, root, "build", "--notify="+spec, "--progress=none", "//:b")
	if r.code != 0 || !strings.Contains(r.stderr, "WARNING: notification not sent") || strings.Contains(r.stderr, "s3cr3t") {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
}

// TestServerFlagFromConfig: --server and its token come from .hepbuildrc
// ("common" lines reach build and export, not the commands without them),
// and an https server is trusted through --tls-ca-cert.
func TestServerFlagFromConfig(t *testing.T) {
	rec := &reporttest.Recorder{}
	srv := httptest.NewTLSServer(rec)
	defer srv.Close()
	root, tokenFile := reportedWorkspace(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	rc := "common --server=" + srv.URL + " --server-token-file=" + tokenFile + "\nbuild --tls-ca-cert=" + ca + "\n"
	if err := os.WriteFile(filepath.Join(root, ".hepbuildrc"), []byte(rc), 0o644); err != nil {
		t.Fatal(err)
	}
	r := hepbuild(t, root, "build", "--progress=none", "//:b")
	m := pageLine.FindStringSubmatch(r.stderr)
	if r.code != 0 || m == nil || strings.Contains(r.stderr, "WARNING") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if b := rec.Build(m[2]); b.Start == nil || b.End == nil || b.End.Outcome != api.OutcomeSuccess || len(b.Actions) != 2 {
		t.Errorf("reported %+v", b)
	}
	if r := hepbuild(t, root, "query", "//:b"); r.code != 0 {
		t.Errorf("query with a common --server: exit %d\n%s", r.code, r.stderr)
	}
	// Without the CA, the server's certificate is refused: one warning.
	if err := os.WriteFile(filepath.Join(root, ".hepbuildrc"), []byte("build --server="+srv.URL+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = hepbuild(t, root, "build", "--progress=none", "//:other")
	if r.code != 0 || strings.Count(r.stderr, "WARNING") != 1 {
		t.Errorf("untrusted server: exit %d\n%s", r.code, r.stderr)
	}
}
