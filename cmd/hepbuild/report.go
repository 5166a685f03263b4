package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/hepbuild/hepbuild/cache/remote"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/server/api"
	"github.com/hepbuild/hepbuild/exec/server/report"
)

// ReportFlags say who hears of a build: a server that shows it (and
// coordinates the group's builds) and where its end is announced. They
// change neither what is built nor how, so they stay out of the null
// build's stamp (and the token and notification secrets are never hashed).
type ReportFlags struct {
	Server          string    `name:"server" placeholder:"URL" help:"Report the build to hepbuild serve at URL (http:// or https://), where its page shows it live, and share work with the group's concurrent builds. A slow or absent server costs one warning, never the build."`
	ServerTokenFile pathValue `name:"server-token-file" placeholder:"FILE" help:"The token of --server, one line in FILE. Never printed."`
	Coordinate      bool      `name:"coordinate" default:"true" negatable:"" help:"With --server, claim each action on the server before running it, so that of the group's concurrent builds needing it only one runs it and the others restore it from the shared cache (--no-coordinate: report only)."`
	Notify          []string  `name:"notify" placeholder:"SPEC" sep:"none" help:"When the build ends, however it ends, tell SPEC: slack+https://..., mattermost+https://..., telegram://TOKEN@CHAT_ID, webhook+https://... (JSON), or @FILE holding one. Repeatable; never printed."`
}

// reporting is one build's server report and notifications, from the
// flags' check to the build's end.
type reporting struct {
	flags     *ReportFlags
	token     string
	client    *http.Client
	notifiers []notifier
	e         *env
	started   time.Time
	targets   []string
	workspace string // the workspace root once known, else where hepbuild ran

	rep     *report.Reporter // nil until the build started on the server
	summary *exec.Summary
	closers []func()
	// after says that the progress display finished: warnings go
	// straight to stderr. mu orders a warning and the display's end.
	mu    sync.Mutex
	after bool
	warn  func(string)
	// serverWarned: a server that fails costs one warning, whether the
	// reporter or the coordinator meets the failure first.
	serverWarned atomic.Bool
}

// reporting checks the flags, before anything is loaded: a bad URL,
// token file or notification spec is bad input.
func (f *ReportFlags) reporting(rf *RemoteFlags, e *env, start time.Time, targets []string) (*reporting, error) {
	rp := &reporting{flags: f, e: e, started: start, targets: targets, workspace: e.cwd}
	if f.Server != "" {
		u, err := url.Parse(f.Server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, badInput("--server %s: want http://HOST:PORT or https://HOST:PORT, the address of hepbuild serve", remote.RedactString(f.Server))
		}
		if u.User != nil {
			return nil, badInput("--server %s: a password in the URL would be shown and stored; give the token with --server-token-file", remote.RedactString(f.Server))
		}
		rp.client = &http.Client{}
		if rf != nil && rf.TLSCACert != "" && u.Scheme == "https" {
			// The group's own CA, as for the remote cache.
			pem, err := os.ReadFile(string(rf.TLSCACert))
			if err != nil {
				return nil, badInput("--tls-ca-cert: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, badInput("--tls-ca-cert %s: no PEM certificate in it", rf.TLSCACert)
			}
			rp.client.Transport = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		}
	}
	if f.ServerTokenFile != "" {
		if f.Server == "" {
			return nil, badInput("--server-token-file goes with --server")
		}
		tok, err := readToken(string(f.ServerTokenFile))
		if err != nil {
			return nil, badInput("--server-token-file: %v", err)
		}
		rp.token = tok
	}
	for i, spec := range f.Notify {
		n, err := parseNotifier(spec)
		if err != nil {
			// The spec is a credential: its number, not its text.
			return nil, badInput("--notify (the %s): %v", ordinal(i+1), err)
		}
		rp.notifiers = append(rp.notifiers, n)
	}
	rp.warn = func(msg string) { fmt.Fprintln(e.stderr, "WARNING: "+msg) }
	return rp, nil
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "first"
	case 2:
		return "second"
	case 3:
		return "third"
	}
	return fmt.Sprintf("%dth", n)
}

// readToken reads a token: one line, never quoted in an error.
func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\r\n \t") {
		return "", fmt.Errorf("%s must hold one token on one line (its content is not shown)", file)
	}
	return tok, nil
}

// sink passes the build's events to the server once begin started the
// build there; nil without --server.
func (rp *reporting) sink() exec.EventSink {
	if rp == nil || rp.flags.Server == "" {
		return nil
	}
	return reportSink{rp}
}

type reportSink struct{ rp *reporting }

// Event passes e on. rp.rep is set before the build's first event, on
// the goroutine that starts the scheduler.
func (s reportSink) Event(e exec.Event) {
	if r := s.rp.rep; r != nil {
		r.Event(e)
	}
}

// begin starts the build on the server, once its actions are known (none
// for a build with nothing to do), and prints its page's address. warn
// reports during the build (nil: on stderr).
func (rp *reporting) begin(s *session, warn func(string), logPath func(*exec.Action) string, offloaded func(*exec.Action) bool) {
	if rp == nil || rp.flags.Server == "" || rp.rep != nil {
		return
	}
	rp.warn = func(msg string) {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		if rp.after || warn == nil {
			fmt.Fprintln(rp.e.stderr, "WARNING: "+msg)
			return
		}
		warn(msg)
	}
	opts := report.Options{
		URL: rp.flags.Server, Client: rp.client, Token: rp.token, Warn: rp.serverWarn,
		Start: api.BuildStart{
			ID: report.NewID(), User: userName(), Targets: rp.targets, Command: redactArgs(rp.e.args),
			Started: rp.started, Version: hepbuildVersion(),
		},
		LogPath: logPath, Offloaded: offloaded,
	}
	opts.Start.Host, _ = os.Hostname()
	if s != nil {
		rp.workspace = s.w.root
		opts.Actions, opts.Graph = s.actions, s.g
	}
	opts.Start.Workspace = rp.workspace
	rp.rep = report.New(opts)
	fmt.Fprintf(rp.e.stderr, "INFO: build reported to %s\n", rp.rep.PageURL())
}

// end closes the reported build and sends the notifications: the outcome
// and exit code are those the command exits with.
func (rp *reporting) end(err error) {
	if rp == nil {
		return
	}
	rp.finishOutput(nil)
	for _, c := range rp.closers {
		c()
	}
	code := exitCodeOf(err)
	outcome := outcomeOf(code)
	elapsed := time.Since(rp.started)
	if rp.summary != nil && rp.summary.Elapsed > 0 {
		elapsed = rp.summary.Elapsed
	}
	link := ""
	var wg sync.WaitGroup
	if rp.rep != nil {
		link = rp.rep.PageURL()
		end := api.BuildEnd{Finished: time.Now(), Outcome: outcome, ExitCode: code, Counts: report.Counts(rp.summary), Elapsed: int64(elapsed)}
		if err != nil && outcome != api.OutcomeSuccess {
			end.Error = err.Error()
		}
		if rp.summary != nil {
			end.CriticalPath = rp.rep.Steps(rp.summary.CriticalPath)
		}
		// The server and the notifications at once: the exit waits for
		// the slower, bounded either way.
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = rp.rep.Close(ctx, end)
		})
	}
	if len(rp.notifiers) > 0 {
		news := buildNews{Targets: rp.targets, Outcome: outcome, ExitCode: code, Summary: rp.summary, Elapsed: elapsed, Link: link, User: userName()}
		news.Host, _ = os.Hostname()
		news.Workspace = rp.workspace
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, err := range sendNotifications(ctx, rp.notifiers, news) {
				fmt.Fprintln(rp.e.stderr, "WARNING: notification not sent:", err)
			}
		})
	}
	wg.Wait()
}

// serverWarn shows the first warning about the server, and only it.
func (rp *reporting) serverWarn(msg string) {
	if rp.serverWarned.CompareAndSwap(false, true) {
		rp.warn(msg)
	}
}

// finishOutput ends the progress display with finish (nil: it ended):
// warnings from then on go to stderr, none is lost in between.
func (rp *reporting) finishOutput(finish func()) {
	if rp == nil {
		if finish != nil {
			finish()
		}
		return
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if finish != nil {
		finish()
	}
	rp.after = true
}

// outcomeOf names the outcome of a build that exits with code.
func outcomeOf(code int) string {
	switch code {
	case exitOK:
		return api.OutcomeSuccess
	case exitBuildFailed:
		return api.OutcomeFailed
	case exitInterrupted:
		return api.OutcomeInterrupted
	}
	return api.OutcomeError
}

// buildNews is what a notification says of a build that ended.
type buildNews struct {
	Targets   []string
	Outcome   string
	ExitCode  int
	Summary   *exec.Summary
	Elapsed   time.Duration
	Link      string
	User      string
	Host      string
	Workspace string
}

func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

// hepbuildVersion is the module version, or "devel" in a source checkout.
func hepbuildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// secretWords mark flags whose values are credentials or name them:
// their values never leave the machine in a build's record.
var secretWords = []string{"token", "secret", "key", "password", "notify", "header", "credential"}

// redactArgs is a command line fit for the build's record: the values of
// flags named like credentials replaced, and passwords in URLs removed.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	hide := false
	for i, a := range args {
		switch {
		case hide:
			out[i], hide = "REDACTED", false
			continue
		case a == "--":
			copy(out[i:], args[i:])
			for j := i; j < len(out); j++ {
				out[j] = redactURL(out[j])
			}
			return out
		}
		out[i] = redactURL(a)
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !secretName(name) {
			continue
		}
		if hasValue {
			out[i] = a[:strings.IndexByte(a, '=')+1] + "REDACTED"
		} else {
			hide = true
		}
	}
	return out
}

func secretName(name string) bool {
	name = strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// redactURL removes a password from a URL, alone or as a flag's value.
func redactURL(a string) string {
	i := strings.Index(a, "://")
	if i < 0 || !strings.Contains(a, "@") {
		return a
	}
	start := strings.LastIndexByte(a[:i], '=') + 1
	return a[:start] + remote.RedactString(a[start:])
}
