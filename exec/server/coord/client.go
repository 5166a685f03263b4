package coord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/server/api"
)

// Client is a build's side of the coordinator: an exec.Coordinator that
// claims keys on a Server over HTTP and renews the claims it holds in the
// background. A server that cannot be reached, or answers what the
// protocol does not allow, turns the client off for the rest of the build
// with one warning: every later claim is granted at once, so that the
// coordinator never stops or slows a build. Safe for concurrent use.
type Client struct {
	base  string
	hc    *http.Client
	token string
	build string
	warn  func(string)

	// Wait is how long one claim request waits on the server for a
	// holder's release before it asks again (api.DefaultClaimWait).
	// Set it before the first Claim.
	Wait time.Duration
	// Ready, when set, is closed once the server has the build (the
	// reporter's Started): the server refuses claims of builds it does
	// not have, so claims wait for it. Set it before the first Claim.
	Ready <-chan struct{}

	// slow is slowAnswer; tests shorten it.
	slow time.Duration

	off      atomic.Bool
	offOnce  sync.Once
	busyOnce sync.Once
	mu       sync.Mutex
	held     map[string]bool // keys granted and not released
	lease    time.Duration   // the server's, from its last grant
	closed   bool
	stop     chan struct{}
	stopped  chan struct{}
	// releases wait for the release loop, which sends them off the
	// action's path: a finished action's dependents need not wait for a
	// round trip to the server. kick wakes the loop; released is closed
	// when it ended, every release sent.
	releases []api.ReleaseRequest
	kick     chan struct{}
	released chan struct{}
}

// NewClient returns a client of the coordinator at base (the server's
// address, "http://host:port", without the API paths) for the build with
// id build (api.IDLen hex digits). hc nil means a client of its own; it
// must not bound a request's time below api.MaxClaimWait, which a claim
// may wait. token, when not "", goes with every request as a bearer
// token. warn receives the client's warnings (nil: none). Close ends it.
func NewClient(base string, hc *http.Client, token, build string, warn func(string)) *Client {
	if hc == nil {
		// Every waiting claim is one open request: as many connections
		// to the server as the build waits on keys.
		hc = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64}}
	}
	hc = noRedirects(hc)
	if warn == nil {
		warn = func(string) {}
	}
	c := &Client{base: strings.TrimRight(base, "/"), hc: hc, token: token, build: build, warn: warn,
		Wait: api.DefaultClaimWait, slow: slowAnswer, held: map[string]bool{}, lease: DefaultLease,
		stop: make(chan struct{}), stopped: make(chan struct{}), kick: make(chan struct{}, 1), released: make(chan struct{})}
	go c.renewLoop()
	go c.releaseLoop()
	return c
}

var _ exec.Coordinator = (*Client)(nil)

// noRedirects is hc answering redirects as they are: net/http would
// repeat the request, body and token included, to another port of the
// same host or wherever the answer says.
func noRedirects(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// minHeldGap is the least time between two requests for a key that
// another build holds: a server waits up to the asked time before it
// answers "held", one that answers at once (broken, or lying) is asked
// again no faster than this.
const minHeldGap = time.Second

// requestTimeout bounds a request that does not wait on the server: a
// server that accepts connections but never answers is given up on.
const requestTimeout = 15 * time.Second

// slowAnswer is the longest a claim that need not wait may take: each
// claim is on its action's way, and a server that takes seconds to
// answer every claim (overloaded, or stalling) would add them to every
// action that runs. Beyond, the client turns off, as for a server that
// cannot be reached.
const slowAnswer = 5 * time.Second

// errBusy is a server at one of its limits (429, 503): that claim is
// granted locally, the client stays on.
var errBusy = errors.New("the coordinator is at its limit")

// Claim claims key for the action a (see exec.Coordinator). It asks
// once without waiting, so that waiting is called (and the action gives
// its job slot back) as soon as another build is found to hold the key,
// then waits on the server, asking again after each Wait.
func (c *Client) Claim(ctx context.Context, a *exec.Action, key string, waiting func(holder string)) (bool, func(ok bool), error) {
	grantLocally := func() (bool, func(bool), error) { return true, func(bool) {}, nil }
	if c.off.Load() {
		return grantLocally()
	}
	if c.Ready != nil {
		select {
		case <-c.Ready:
		case <-ctx.Done():
			return false, nil, ctx.Err()
		}
		if c.off.Load() {
			return grantLocally()
		}
	}
	req := api.ClaimRequest{Build: c.build, Key: key}
	if a != nil {
		req.Target = a.Owner.String()
	}
	waited := false
	for {
		var resp api.ClaimResponse
		asked := time.Now()
		err := c.post(ctx, api.PathClaim, &req, &resp, time.Duration(req.Wait))
		if err != nil {
			if ctx.Err() != nil {
				return false, nil, ctx.Err()
			}
			if errors.Is(err, errBusy) {
				c.busyOnce.Do(func() {
					c.warn(fmt.Sprintf("coordinator: %v; actions it cannot take run without it", err))
				})
				return grantLocally()
			}
			c.fail(err)
			return grantLocally()
		}
		if took := time.Since(asked); req.Wait == 0 && took > c.slow {
			// Its answer still counts: a key granted is held (and
			// expires with its lease), one held is waited for.
			c.fail(fmt.Errorf("the server took %s to answer a claim", took.Round(time.Millisecond)))
		}
		switch resp.State {
		case api.ClaimGranted:
			return true, c.hold(key, time.Duration(resp.Lease)), nil
		case api.ClaimDone:
			return false, nil, nil
		case api.ClaimHeld:
			if !waited {
				waited = true
				if waiting != nil {
					waiting(describeHolder(resp.Holder))
				}
			}
			if req.Wait > 0 {
				if early := minHeldGap - time.Since(asked); early > 0 {
					t := time.NewTimer(early)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return false, nil, ctx.Err()
					}
				}
			}
			req.Wait = int64(c.Wait)
		default:
			c.fail(fmt.Errorf("answered a claim with state %q", resp.State))
			return grantLocally()
		}
	}
}

// describeHolder names the build that holds a key: "user@host", or
// its id when the server does not know more.
func describeHolder(h *api.Holder) string {
	switch {
	case h == nil:
		return "another build"
	case h.User != "" && h.Host != "":
		return h.User + "@" + h.Host
	case h.User != "":
		return h.User
	case len(h.Build) >= 8:
		return "build " + h.Build[:8]
	}
	return "another build"
}

// hold records a granted key and returns its release.
func (c *Client) hold(key string, lease time.Duration) func(ok bool) {
	c.mu.Lock()
	c.held[key] = true
	if lease > 0 {
		c.lease = lease
	}
	c.mu.Unlock()
	var once sync.Once
	return func(ok bool) {
		once.Do(func() {
			c.mu.Lock()
			held := c.held[key]
			delete(c.held, key)
			c.mu.Unlock()
			if !held || c.off.Load() {
				return // released by Close, or the server is gone: the lease ends it
			}
			c.mu.Lock()
			c.releases = append(c.releases, api.ReleaseRequest{Build: c.build, Key: key, OK: ok})
			c.mu.Unlock()
			select {
			case c.kick <- struct{}{}:
			default:
			}
		})
	}
}

// releaseLoop sends the queued releases, in order, until Close; then it
// sends what is left, within a few seconds.
func (c *Client) releaseLoop() {
	defer close(c.released)
	for {
		select {
		case <-c.kick:
			// Not the action's context: a cancelled build still tells
			// the others that the key is free.
			c.sendReleases(context.Background())
		case <-c.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.sendReleases(ctx)
			cancel()
			return
		}
	}
}

// sendReleases sends the queued releases.
func (c *Client) sendReleases(ctx context.Context) {
	for {
		c.mu.Lock()
		rs := c.releases
		c.releases = nil
		c.mu.Unlock()
		if len(rs) == 0 {
			return
		}
		for _, r := range rs {
			if c.off.Load() || ctx.Err() != nil {
				break // the server is gone: the leases end the claims
			}
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			err := c.post(rctx, api.PathRelease, &r, nil, 0)
			cancel()
			if err != nil && !errors.Is(err, errBusy) {
				c.fail(err)
			}
		}
	}
}

// fail turns the client off, with one warning.
func (c *Client) fail(err error) {
	c.off.Store(true)
	c.offOnce.Do(func() {
		c.warn(fmt.Sprintf("coordinator: %v; continuing without it: this build may run actions that another build runs too", err))
	})
}

// renewLoop renews the held claims every third of the lease, in one
// request, until Close.
func (c *Client) renewLoop() {
	defer close(c.stopped)
	for {
		c.mu.Lock()
		every := c.lease / 3
		c.mu.Unlock()
		t := time.NewTimer(every)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
		c.renew()
	}
}

// renew renews every held claim in one request.
func (c *Client) renew() {
	if c.off.Load() {
		return
	}
	c.mu.Lock()
	keys := make([]string, 0, len(c.held))
	for k := range c.held {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := c.post(ctx, api.PathRenew, &api.RenewRequest{Build: c.build, Keys: keys}, nil, 0); err != nil && !errors.Is(err, errBusy) {
		c.fail(err)
	}
}

// Close stops the renewals and releases every claim still held (a build
// that ends with actions unfinished), within a few seconds at most; the
// leases end those it could not release. Later claims are granted at
// once, without the server.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	keys := make([]string, 0, len(c.held))
	for k := range c.held {
		keys = append(keys, k)
	}
	clear(c.held)
	c.mu.Unlock()
	close(c.stop)
	<-c.stopped
	<-c.released
	wasOff := c.off.Swap(true)
	if wasOff {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, k := range keys {
		if err := c.post(ctx, api.PathRelease, &api.ReleaseRequest{Build: c.build, Key: k}, nil, 0); err != nil {
			return fmt.Errorf("coordinator: releasing claims: %w", err)
		}
	}
	return nil
}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 1 << 20

// post sends v as JSON to path and decodes the answer into out (nil: none
// expected). wait is how long the server may hold the request.
func (c *Client) post(ctx context.Context, path string, v, out any, wait time.Duration) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout+min(wait, api.MaxClaimWait))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("bad server address: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the server: %w", err)
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s", errBusy, firstLine(resp.Body))
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("%s: %s %s", path, resp.Status, firstLine(resp.Body))
	case out == nil:
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("%s: unreadable answer: %w", path, err)
	}
	return nil
}

// firstLine is the start of an error answer, for a warning.
func firstLine(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 200))
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
