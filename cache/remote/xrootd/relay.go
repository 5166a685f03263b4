package xrootd

import (
	"io"
	"net"
	"sync"
)

// relay stands between go-hep's client and the server. go-hep panics, in a
// goroutine of its own that no recover reaches, when the connection of its
// first session (or of a data connection bound to it) ends while the
// client is still open: a server that restarts or a network that drops
// would take hepbuild down with it. So the client dials this loopback
// relay, which forwards every connection to the server; when the server's
// side ends, the relay reports it on broken and keeps the client's side
// open, and the cache closes the client, which cancels its sessions
// before closing their connections, so go-hep winds down without a panic.
//
// Connections to other servers that the server redirects to do not pass
// the relay; go-hep does not panic when those end.
type relay struct {
	ln     net.Listener
	server string
	first  net.Conn // dialled by the cache before the client connects

	brokenOnce sync.Once
	broken     chan struct{}
	err        error // why broken closed; set before

	mu       sync.Mutex
	closed   bool
	upstream []net.Conn
	client   []net.Conn
}

// newRelay listens on loopback and forwards connections to server; first
// is an open connection to it, used for the client's first connection.
func newRelay(server string, first net.Conn, dial func() (net.Conn, error)) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, server: server, first: first, broken: make(chan struct{})}
	go r.accept(dial)
	return r, nil
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) fail(err error) {
	r.brokenOnce.Do(func() {
		r.err = err
		close(r.broken)
	})
}

func (r *relay) accept(dial func() (net.Conn, error)) {
	first := r.first
	for {
		down, err := r.ln.Accept()
		if err != nil {
			if first != nil {
				first.Close()
			}
			return
		}
		up := first
		first = nil
		go func() {
			if up == nil {
				var err error
				if up, err = dial(); err != nil {
					// Hold the client's side open; the cache closes
					// the client on broken.
					r.track(nil, down)
					r.fail(err)
					return
				}
			}
			if !r.track(up, down) {
				up.Close()
				down.Close()
				return
			}
			go func() {
				// The client closed its side (only after cancelling its
				// session): the server's side is of no more use.
				io.Copy(up, down)
				up.Close()
			}()
			_, err := io.Copy(down, up)
			if err == nil {
				err = io.EOF
			}
			r.fail(err)
		}()
	}
}

// track remembers the connections for close; false if already closed.
func (r *relay) track(up, down net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if up != nil {
		r.upstream = append(r.upstream, up)
	}
	r.client = append(r.client, down)
	return true
}

// close stops the relay. Call it only once go-hep's client is closed (or
// never connected): closing the client's side under an open client is
// what makes go-hep panic.
func (r *relay) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	r.ln.Close()
	for _, c := range r.upstream {
		c.Close()
	}
	for _, c := range r.client {
		c.Close()
	}
}

// closeServerSide drops the connections to the server only, for a client
// whose Close may not return (the client's side stays open, so go-hep
// cannot panic, at the cost of its sockets).
func (r *relay) closeServerSide() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ln.Close()
	for _, c := range r.upstream {
		c.Close()
	}
}
