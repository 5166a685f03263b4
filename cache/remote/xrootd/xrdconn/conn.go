// Package xrdconn is a connection to one XRootD server (root://) through
// go-hep's pure-Go client, made safe to use from a long-running process:
// every call is bounded by a timeout, a server that goes away or stalls
// is remote.ErrTransient and never a crash or a hang, and go-hep's errors
// are translated once, into the kinds hepbuild tells apart. The remote
// cache tier (cache/remote/xrootd) and remote data (storage/xrootd) both
// talk XRootD through it.
//
// go-hep's client authenticates with the unix, krb5 and host protocols
// only: not with GSI (X.509 proxies) and not with tokens (ztn). It panics,
// in goroutines of its own that no recover reaches, when its connection
// ends while it is open and when a server answers asynchronously
// (kXR_waitresp, then kXR_attn); the relay (relay.go) prevents both.
package xrdconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go-hep.org/x/hep/xrootd"
	"go-hep.org/x/hep/xrootd/xrdproto"

	"github.com/hepbuild/hepbuild/cache/remote"
)

// XRootD server error codes (XProtocol.hh) that go-hep does not name.
const (
	errFSError     = 3005
	errNoMemory    = 3008
	errServerError = 3012
	errNoServer    = 3014
	errOverloaded  = 3024
	errFSReadOnly  = 3025
	errAuthFailed  = 3030
	errReqTimedOut = 3034
	errTimerExpire = 3035
)

// Config says where a Conn connects and how its errors read.
type Config struct {
	// Addr is host:port.
	Addr string
	// User is the name the unix protocol logs in with.
	User string
	// Prefix starts every error message, e.g. "remote cache root://h//c";
	// empty for none (the caller's what names the URL).
	Prefix string
	// NotFound is what the error of a call on a missing file wraps, e.g.
	// cache.ErrNotFound.
	NotFound error
	// Timeout bounds each call, the connection and login included.
	Timeout time.Duration
}

// Conn is a lazily opened connection to one server. It is safe for
// concurrent use: one go-hep client (one TCP connection, on which XRootD
// multiplexes requests, plus the data connections go-hep binds to it)
// serves every call. A connection that fails is dropped and the next call
// dials again.
type Conn struct {
	cfg     Config
	answers atomic.Int64

	mu     sync.Mutex // guards client and relay
	client *xrootd.Client
	relay  *relay
}

// New returns a Conn; it does not connect: the first call does, so a
// server that is down is an error of that call.
func New(cfg Config) *Conn {
	if cfg.Timeout <= 0 {
		cfg.Timeout = remote.DefaultTimeout
	}
	return &Conn{cfg: cfg}
}

// Answers is the number of final answers the server has sent so far (a
// kXR_oksofar part is not one): a round-trip count for tests and
// diagnostics.
func (c *Conn) Answers() int64 { return c.answers.Load() }

// Close drops the connection, in the background: see abandon.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		c.abandon(c.client, c.relay)
		c.client, c.relay = nil, nil
	}
	return nil
}

func (c *Conn) errorf(what, format string, args ...any) error {
	p := what
	if c.cfg.Prefix != "" {
		p = c.cfg.Prefix + ": " + what
	}
	return fmt.Errorf("%s: "+format, append([]any{p}, args...)...)
}

// abandon closes a client and then its relay, in the background. go-hep's
// Client.Close can block (on a request whose answer its reader cannot
// deliver); the relay's connections to the server are then dropped after
// Timeout, while the client's side stays open so that go-hep cannot panic.
func (c *Conn) abandon(cl *xrootd.Client, r *relay) {
	go func() {
		done := make(chan struct{})
		go func() {
			if cl != nil {
				cl.Close()
			}
			close(done)
		}()
		t := time.NewTimer(c.cfg.Timeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			r.closeServerSide()
			<-done
		}
		r.close()
	}()
}

// get returns the shared client, connecting first if there is none. The
// client lives beyond ctx (go-hep ties its reader goroutine to the
// context given to NewClient), so it is made with a background context
// and ctx only bounds the wait for it.
func (c *Conn) get(ctx context.Context, what string) (*xrootd.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		select {
		case <-c.relay.broken:
			// Lost, and watch has not dropped it yet: a request sent
			// on it would fail.
			c.abandon(c.client, c.relay)
			c.client, c.relay = nil, nil
		default:
			return c.client, nil
		}
	}
	// The first connection is dialled here, so that a server that is down
	// is reported at once and plainly; go-hep then connects through the
	// relay (see relay.go).
	var d net.Dialer
	first, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, c.errorf(what+": connecting", "%w (%v)", remote.ErrTransient, err)
	}
	rl, err := newRelay(c.cfg.Addr, first, func() (net.Conn, error) {
		dctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		defer cancel()
		return d.DialContext(dctx, "tcp", c.cfg.Addr)
	}, &c.answers)
	if err != nil {
		first.Close()
		return nil, c.errorf(what+": connecting", "%w (%v)", remote.ErrTransient, err)
	}
	type result struct {
		cl  *xrootd.Client
		err error
	}
	ch := make(chan result, 1)
	// cctx is cancelled only if the login is given up, never after it
	// succeeded: every session of the client lives on it.
	cctx, ccancel := context.WithCancel(context.Background())
	go func() {
		cl, err := xrootd.NewClient(cctx, rl.addr(), c.cfg.User)
		ch <- result{cl, err}
	}()
	giveUp := func(why error) error {
		ccancel()
		go func() {
			r := <-ch
			c.abandon(r.cl, rl)
		}()
		return c.errorf(what+": connecting", "%w (%v)", remote.ErrTransient, why)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			ccancel()
			rl.close() // NewClient closed its client
			return nil, c.loginError(what, r.err)
		}
		c.client, c.relay = r.cl, rl
		go c.watch(r.cl, rl, ccancel)
		return r.cl, nil
	case <-rl.broken:
		return nil, giveUp(rl.err)
	case <-ctx.Done():
		return nil, giveUp(ctx.Err())
	}
}

// watch drops the client when its relay loses the server, so that calls
// waiting for answers fail at once and the next call dials again.
func (c *Conn) watch(cl *xrootd.Client, rl *relay, cancel context.CancelFunc) {
	<-rl.broken
	c.mu.Lock()
	if c.client == cl {
		c.abandon(cl, rl)
		c.client, c.relay = nil, nil
	}
	c.mu.Unlock()
	// Cancelling the client's context makes its readers stop quietly
	// whatever happens to their connections from now on.
	cancel()
}

// loginError explains a failed connection or login. go-hep offers only
// the unix, krb5 and host protocols; a server that accepts none of them
// (GSI with an X.509 proxy, tokens) refuses the login.
func (c *Conn) loginError(what string, err error) error {
	msg := err.Error()
	low := strings.ToLower(msg)
	var se xrdproto.ServerError
	if strings.Contains(low, "gsi") || strings.Contains(low, "ztn") || strings.Contains(low, "auth") ||
		(errors.As(err, &se) && (se.Code == xrdproto.NotAuthorized || se.Code == errAuthFailed)) {
		why := "the server refused every authentication protocol hepbuild's XRootD client offers (unix, krb5, host)"
		if strings.Contains(low, "gsi") {
			why = "the server demands X.509 proxy authentication (GSI), which hepbuild's XRootD client does not support; use a server or door that allows unix or krb5 (kinit), or its https:// (davs://) interface with the proxy"
		} else if strings.Contains(low, "ztn") {
			why = "the server demands token authentication (ztn), which hepbuild's XRootD client does not support; use its https:// (davs://) interface with the token"
		}
		return c.errorf(what+": login", "%s: %w (%s)", why, remote.ErrDenied, msg)
	}
	return c.errorf(what+": connecting", "%w (%s)", remote.ErrTransient, msg)
}

// drop forgets a client whose connection failed, so the next call dials
// again (go-hep does not reconnect by itself).
func (c *Conn) drop(cl *xrootd.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil && c.client == cl {
		c.abandon(c.client, c.relay)
		c.client, c.relay = nil, nil
	}
}

// Call runs op on the shared client within the timeout, translating its
// error (see Translate). op runs in its own goroutine so that a server
// that stops answering costs Timeout, never a hang, even where go-hep
// would not notice the cancelled context; a call that fails with
// remote.ErrTransient drops the client.
func (c *Conn) Call(ctx context.Context, what string, op func(ctx context.Context, cl *xrootd.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	cl, err := c.get(ctx, what)
	if err != nil {
		return err
	}
	return c.run(ctx, what, cl, op)
}

// CallOn is Call on the client cl, the one a file was opened on: a file
// handle is only valid on its own connection. If that connection was
// lost, CallOn fails at once with remote.ErrTransient rather than sending
// the request on a new connection, where its failure would drop a
// healthy client.
func (c *Conn) CallOn(ctx context.Context, what string, cl *xrootd.Client, op func(ctx context.Context, cl *xrootd.Client) error) error {
	c.mu.Lock()
	current := c.client == cl
	c.mu.Unlock()
	if !current {
		return c.errorf(what, "%w (the connection the file was opened on was lost)", remote.ErrTransient)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	return c.run(ctx, what, cl, op)
}

// Re-sending a request the server answered kXR_wait: after waitFirst,
// doubling up to waitMax, or after the seconds the server asked for if
// fewer. XRootD asks 30 s whenever its checksum job table is full, however
// soon it empties (a dozen small files take milliseconds), and 30 s is
// more than a whole call may take; asking again sooner costs the server
// one request a second or two per waiting call.
const (
	waitFirst = 100 * time.Millisecond
	waitMax   = 2 * time.Second
)

// serverWait reports whether err is a kXR_wait answer (turned into an
// error by the relay, see waitAsError), with the seconds the server asked
// to wait and its message.
func serverWait(err error) (secs int, msg string, ok bool) {
	var se xrdproto.ServerError
	if !errors.As(err, &se) || se.Code != errWait {
		return 0, "", false
	}
	n, msg, _ := strings.Cut(se.Message, " ")
	secs, cerr := strconv.Atoi(n)
	if cerr != nil {
		secs = -1
	}
	return secs, msg, true
}

// run runs op, again while the server answers kXR_wait and the deadline
// allows (op is then re-run whole: every op hepbuild runs is one request,
// or ends at the one the server did not perform). A server that keeps
// asking to wait past the deadline is remote.ErrTransient, but its healthy
// connection is kept.
func (c *Conn) run(ctx context.Context, what string, cl *xrootd.Client, op func(ctx context.Context, cl *xrootd.Client) error) error {
	delay := waitFirst
	for {
		err := c.runOnce(ctx, what, cl, op)
		secs, msg, ok := serverWait(err)
		if !ok {
			return err
		}
		d := delay
		if secs >= 0 && time.Duration(secs)*time.Second < d {
			d = time.Duration(secs) * time.Second
		}
		delay = min(2*delay, waitMax)
		busy := c.errorf(what, "%w: the server is busy and keeps asking to retry (in %d s: %s)", remote.ErrTransient, secs, msg)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return busy
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return busy
		}
	}
}

func (c *Conn) runOnce(ctx context.Context, what string, cl *xrootd.Client, op func(ctx context.Context, cl *xrootd.Client) error) error {
	// go-hep must never see a cancelled context while its connection is
	// healthy: a request given up early leaves the client's reader
	// goroutine blocked on delivering the late answer (with the stream
	// multiplexer's lock held), which stalls every later request and
	// Close; and the extra data connection go-hep binds for reads and
	// writes (kXR_bind) lives only as long as the context of the request
	// that opened it, so the next read or write sent on it never gets its
	// answer. op therefore runs without cancellation and the deadline is
	// enforced here; a call that times out abandons the whole client.
	done := make(chan error, 1)
	go func() { done <- op(context.WithoutCancel(ctx), cl) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		return nil
	}
	if _, _, ok := serverWait(err); ok {
		return err // for run
	}
	err = c.Translate(what, err)
	if errors.Is(err, remote.ErrTransient) {
		c.drop(cl)
	}
	return err
}

// Translate maps a go-hep error to Config.NotFound, remote.ErrDenied,
// remote.ErrTransient or a plain error naming the server's message.
func (c *Conn) Translate(what string, err error) error {
	var se xrdproto.ServerError
	if errors.As(err, &se) {
		switch se.Code {
		case xrdproto.NotFound:
			if c.cfg.NotFound != nil {
				return c.errorf(what, "%w", c.cfg.NotFound)
			}
		case xrdproto.NotAuthorized, errFSReadOnly, errAuthFailed:
			return c.errorf(what, "%w: %s", remote.ErrDenied, se.Message)
		case errFSError:
			// XRootD 5.5 reports a read-only export (EROFS) as a generic
			// file system error, "file path marked read/only".
			if m := strings.ToLower(se.Message); strings.Contains(m, "read/only") || strings.Contains(m, "read-only") || strings.Contains(m, "read only") {
				return c.errorf(what, "%w: %s", remote.ErrDenied, se.Message)
			}
		case errWait:
			secs, msg, _ := serverWait(err)
			return c.errorf(what, "%w: the server is busy and asks to retry in %d s (%s)", remote.ErrTransient, secs, msg)
		case errNoMemory, errServerError, errNoServer, errOverloaded, errReqTimedOut, errTimerExpire:
			return c.errorf(what, "%w: %s", remote.ErrTransient, se.Message)
		}
		return c.errorf(what, "%s (XRootD error %d)", se.Message, se.Code)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &ne) || strings.Contains(err.Error(), "closed") {
		return c.errorf(what, "%w (%v)", remote.ErrTransient, err)
	}
	if errors.Is(err, context.Canceled) {
		return c.errorf(what, "%w", err)
	}
	// go-hep reports a broken connection in many ways; anything that is not
	// the server's own answer is taken as one.
	return c.errorf(what, "%w (%v)", remote.ErrTransient, err)
}
