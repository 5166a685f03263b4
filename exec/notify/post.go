package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
)

// endpoint is where one notifier posts, and everything that keeps its
// secret (the URL's path and query, a bot token) out of what is printed. It
// is immutable after Parse and so safe for concurrent use.
type endpoint struct {
	kind   string
	target *url.URL // the whole URL: a credential
	// secrets are the strings that must never be printed: the path, the
	// query, each long path segment and query value, a token, in the forms
	// a server might echo them.
	secrets []string
	client  *http.Client
}

// maxAnswer bounds how much of a destination's answer is read: enough for
// an error description, not a page.
const maxAnswer = 4 << 10

func newEndpoint(kind string, target *url.URL, extra ...string) *endpoint {
	e := &endpoint{kind: kind, target: target}
	e.addSecrets(target.Path, target.RawPath, target.RawQuery, target.Fragment, target.String())
	for _, seg := range strings.Split(target.Path, "/") {
		// Short segments ("hooks", "api") are the public shape of the
		// URL; the ids and tokens are long, and redacting a short word
		// would garble every message that contains it.
		if len(seg) >= 6 {
			e.addSecrets(seg)
		}
	}
	for _, vs := range target.Query() {
		for _, v := range vs {
			if len(v) >= 4 {
				e.addSecrets(v)
			}
		}
	}
	e.addSecrets(extra...)
	// Longest first, so that a whole URL goes before its parts.
	slices.SortFunc(e.secrets, func(a, b string) int { return len(b) - len(a) })
	e.client = &http.Client{
		Transport: http.DefaultTransport,
		// A webhook that answers with a redirect to another host
		// would carry the message (and a token in the path) to whoever
		// that host is: follow only the same host, and never from
		// https down to http.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Host != target.Host {
				return errOtherHost
			}
			if req.URL.Scheme != target.Scheme {
				return errors.New("redirected to another scheme; not followed")
			}
			return nil
		},
	}
	return e
}

var errOtherHost = errors.New("redirected to another host; not followed")

func (e *endpoint) addSecrets(ss ...string) {
	for _, s := range ss {
		if len(s) < 2 || s == "/" {
			continue
		}
		e.secrets = append(e.secrets, s, url.PathEscape(s), url.QueryEscape(s))
	}
}

// host is what may be printed about the destination.
func (e *endpoint) host() string { return e.target.Host }

func (e *endpoint) String() string { return e.kind + " (" + e.host() + ")" }

// redact removes every secret from s.
func (e *endpoint) redact(s string) string {
	for _, sec := range e.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// sendError is a failure to notify. Its message names the kind and host and
// is redacted; it unwraps to the cause (e.g. context.DeadlineExceeded), never
// to the *url.Error that holds the URL.
type sendError struct {
	msg string
	err error
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.err }

// errorf redacts the arguments only: a secret path segment may be an
// ordinary word ("/notify/...") that must not be cut out of the message.
func (e *endpoint) errorf(cause error, format string, args ...any) error {
	for i, a := range args {
		args[i] = e.redact(fmt.Sprint(a))
	}
	msg := e.kind + " notification to " + e.host() + ": " + fmt.Sprintf(format, args...)
	return &sendError{msg: msg, err: cause}
}

// guard turns a panic inside f into a redacted error: a panic value may
// quote a request and with it the URL.
func (e *endpoint) guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = e.errorf(nil, "panic: %v", r)
		}
	}()
	return f()
}

// post sends payload as JSON and returns the answer's body when the
// destination answered 2xx.
func (e *endpoint) post(ctx context.Context, payload any) ([]byte, error) {
	var body []byte
	err := e.guard(func() error {
		b, err := json.Marshal(payload)
		if err != nil {
			return e.errorf(err, "encoding the message: %v", err)
		}
		body, err = e.do(ctx, b)
		return err
	})
	return body, err
}

func (e *endpoint) do(ctx context.Context, payload []byte) ([]byte, error) {
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.target.String(), bytes.NewReader(payload))
	if err != nil {
		return nil, e.errorf(unwrapURL(err), "making the request: %v", unwrapURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hepbuild-notify")
	resp, err := e.client.Do(req)
	if err != nil {
		cause := unwrapURL(err)
		switch {
		case errors.Is(cause, context.DeadlineExceeded):
			return nil, e.errorf(cause, "no answer after %v", time.Since(t0).Round(time.Millisecond))
		case errors.Is(cause, context.Canceled):
			return nil, e.errorf(cause, "cancelled")
		}
		return nil, e.errorf(cause, "%v", cause)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
			return nil, e.errorf(nil, "answered %s: a redirect, not followed", resp.Status)
		}
		if d := describe(answer); d != "" {
			return nil, e.errorf(nil, "answered %s: %s", resp.Status, d)
		}
		return nil, e.errorf(nil, "answered %s", resp.Status)
	}
	if err != nil {
		cause := unwrapURL(err)
		return nil, e.errorf(cause, "reading the answer: %v", cause)
	}
	return answer, nil
}

// unwrapURL drops the *url.Error around a transport error: its message
// quotes the whole URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// describe makes a short, one-line, printable excerpt of an error answer:
// Slack and Mattermost answer a word ("no_service"), Telegram a JSON object
// with a description, others an HTML page best left out.
func describe(answer []byte) string {
	var tg struct {
		Description string `json:"description"`
	}
	s := string(answer)
	if json.Unmarshal(answer, &tg) == nil && tg.Description != "" {
		s = tg.Description
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") {
		return ""
	}
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	const max = 200
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// isLoopback says whether host (no port) is this machine, where plain http
// cannot be overheard: the tests' servers.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
