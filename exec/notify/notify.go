// Package notify tells people that a build ended: it posts one message to
// Slack or Mattermost incoming webhooks, to a Telegram bot, or as JSON to any
// webhook, so that whoever started a long analysis learns on their phone that
// it succeeded or why it failed.
//
// A destination is written as a URL whose scheme carries the kind (see
// Parse), for example
//
//	slack+https://hooks.slack.com/services/T000/B000/XXXX
//	mattermost+https://chat.example.org/hooks/ID
//	telegram+https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<ID>
//	telegram://<TOKEN>@<CHAT_ID>
//	webhook+https://ci.example.org/hepbuild
//	@FILE (the first URL in FILE)
//
// Webhook URLs and bot tokens are credentials: whoever holds one can post in
// the channel. So nothing this package prints (String, errors, recovered
// panics) contains a URL's path, query or token; it names the kind and the
// host only.
//
// Sending never decides a build's outcome: Send bounds every destination in
// time, runs them in parallel, and returns errors for the caller to print as
// warnings.
package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hepbuild/hepbuild/exec"
)

// Outcomes of a build, the values of Message.Outcome.
const (
	OutcomeSuccess     = "success"
	OutcomeFailed      = "failed"      // actions ran and failed
	OutcomeInterrupted = "interrupted" // the user stopped it
	OutcomeError       = "error"       // it could not run: analysis, infrastructure
)

// Message is what a notification says about one build. It is a plain value.
type Message struct {
	// Title is the headline, e.g. "hepbuild: //ana:datacards succeeded";
	// when empty, one is made from Targets and Outcome.
	Title    string
	Targets  []string
	Outcome  string // one of the Outcome constants
	ExitCode int
	Counts   Counts
	Elapsed  time.Duration
	User     string
	Host     string
	// Workspace is the directory the build ran in.
	Workspace string
	// Link is the build's page on a server, empty when none is configured.
	Link string
	// Failures are the first few failed targets with their reasons, e.g.
	// "//ana:fit (Fit): exit status 1"; see FailuresOf.
	Failures []string
}

// Counts are a build's actions by outcome.
type Counts struct {
	Total    int
	Executed int
	Cached   int
	UpToDate int
	Failed   int
	Skipped  int
}

// CountsOf returns the counts of a finished build; a nil summary (the build
// never started) counts nothing.
func CountsOf(s *exec.Summary) Counts {
	if s == nil {
		return Counts{}
	}
	return Counts{Total: s.Total, Executed: s.Executed, Cached: s.Cached,
		UpToDate: s.UpToDate, Failed: s.Failed, Skipped: s.Skipped}
}

// FailuresOf describes the first max failed actions of a build, one line
// each: a phone screen has room for a few, and the build page has the rest.
func FailuresOf(s *exec.Summary, max int) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, f := range s.Failures {
		if len(out) == max {
			break
		}
		if f == nil || f.Action == nil {
			continue
		}
		out = append(out, f.Action.Owner.String()+" ("+f.Action.Mnemonic+"): "+f.Reason)
	}
	return out
}

// Notifier posts a Message to one destination. Implementations are safe for
// concurrent use.
type Notifier interface {
	// Kind is "slack", "mattermost", "telegram" or "webhook".
	Kind() string
	// Send posts m once; it returns when the destination answered or ctx
	// ended. Its error names the kind and the host, never the URL.
	Send(ctx context.Context, m Message) error
	// String names the destination for people: the kind and the host,
	// never the secret path, query or token.
	String() string
}

// DefaultTimeout bounds each destination in Send: a notification that has
// not gone out in this time is not worth holding up the end of a build.
const DefaultTimeout = 10 * time.Second

// defaultTimeout is DefaultTimeout, shortened by tests.
var defaultTimeout = DefaultTimeout

// Send posts m to every notifier in parallel, each bounded by DefaultTimeout
// (or ctx's deadline when sooner), and returns the errors of those that
// failed, nil when all succeeded. It never panics: a notifier that panics is
// reported as an error.
func Send(ctx context.Context, ns []Notifier, m Message) []error {
	errs := make([]error, len(ns))
	var wg sync.WaitGroup
	for i, n := range ns {
		if n == nil {
			errs[i] = errors.New("notify: no destination (nil notifier)")
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
			defer cancel()
			errs[i] = sendOne(ctx, n, m)
		})
	}
	wg.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// sendOne turns a panic of a notifier into an error, so that one faulty
// destination costs a warning, not the build's report. The panic value of a
// notifier of this package is already redacted (endpoint.guard); a foreign
// notifier's is its own responsibility.
func sendOne(ctx context.Context, n Notifier, m Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: panic while sending: %v", safeString(n), r)
		}
	}()
	return n.Send(ctx, m)
}

// safeString is n.String(), which may itself panic in a foreign notifier.
func safeString(n Notifier) (s string) {
	defer func() {
		if recover() != nil {
			s = "notifier"
		}
	}()
	return n.String()
}
