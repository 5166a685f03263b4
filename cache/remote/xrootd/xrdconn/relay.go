package xrdconn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// relay stands between go-hep's client and the server. go-hep panics, in a
// goroutine of its own that no recover reaches, when the connection of its
// first session (or of a data connection bound to it) ends while the
// client is still open: a server that restarts or a network that drops
// would take hepbuild down with it. So the client dials this loopback
// relay, which forwards every connection to the server; when the server's
// side ends, the relay reports it on broken and keeps the client's side
// open, and Conn closes the client, which cancels its sessions
// before closing their connections, so go-hep winds down without a panic.
//
// The relay also reads the server's side frame by frame (see forward), to
// turn the server's asynchronous answers into ordinary ones: go-hep
// misreads the first and panics on the second.
//
// Connections to other servers that the server redirects to do not pass
// the relay; go-hep does not panic when those end.
type relay struct {
	ln     net.Listener
	server string
	first  net.Conn // dialled by Conn before the client connects
	// answers counts the server's final answers (not kXR_oksofar parts)
	// forwarded to the client: one per round trip.
	answers *atomic.Int64

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
func newRelay(server string, first net.Conn, dial func() (net.Conn, error), answers *atomic.Int64) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, server: server, first: first, answers: answers, broken: make(chan struct{})}
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
					// Hold the client's side open; Conn closes the
					// client on broken.
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
			err := r.forward(down, up)
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

// Response statuses and attention codes (XProtocol.hh) that go-hep does
// not handle, or handles in a way hepbuild cannot use.
const (
	statusOkSoFar  = 4000 // kXR_oksofar: part of an answer, more follows
	statusAttn     = 4001 // kXR_attn: unsolicited message
	statusError    = 4003 // kXR_error: errnum[4] message
	statusWait     = 4005 // kXR_wait: seconds[4] message; re-send the request then
	statusWaitResp = 4006 // kXR_waitresp: the answer comes later, as kXR_attn
	actAsynResp    = 5008 // kXR_asynresp: a kXR_attn carrying a delayed answer
)

// errWait is the error number of the kXR_error frame forward makes of a
// kXR_wait (see waitAsError); XRootD's own error numbers are 3000–3999.
const errWait = 4005

// waitAsError turns the data of a kXR_wait answer (seconds[4] message)
// into that of a kXR_error of number errWait, whose message is the
// seconds in decimal, a space and the server's message (see serverWait).
//
// go-hep handles kXR_wait by sleeping the seconds the server asks for and
// re-sending the request by itself, outside any deadline: XRootD asks 30 s
// whenever its checksum job table is full (XrdXrootdJob::Schedule; the
// table holds 3 × "xrootd.chksum max", 12 by default, for every client of
// the server), so with more than 12 unstored checksums asked at once the
// extra ones outlive a call's timeout, which drops the connection and
// fails any other call still on it. As an error, the kXR_wait reaches
// Conn.run, which re-sends within the call's deadline.
func waitAsError(data []byte) []byte {
	secs := int64(-1)
	msg := ""
	if len(data) >= 4 {
		secs = int64(int32(binary.BigEndian.Uint32(data[:4])))
		msg = string(bytes.TrimRight(data[4:], "\x00"))
	}
	b := binary.BigEndian.AppendUint32(nil, errWait)
	b = append(b, fmt.Sprintf("%d %s", secs, msg)...)
	return append(b, 0)
}

// smallFrame is the size up to which a frame is read whole and written
// in one piece; larger ones (read data) are copied by the kernel.
const smallFrame = 64 << 10

// forward copies the server's frames to the client until the server's
// side ends. Every frame the server sends, the handshake's answer
// included, is streamid[2] status[2] dlen[4] (big-endian) and dlen bytes.
//
// A server that cannot answer at once (XRootD computing a checksum it has
// not stored yet) answers kXR_waitresp and later sends the answer inside
// a kXR_attn frame of action kXR_asynresp: actnum[4] reserved[4], then
// the answer's own header and data. go-hep takes the kXR_waitresp frame
// for the answer and panics on the kXR_attn (it finds no request waiting
// on its stream id 0), in a goroutine no recover reaches. So forward
// swallows kXR_waitresp and passes the answer embedded in the matching
// kXR_asynresp on as an ordinary frame of its stream id: go-hep sees one
// synchronous answer. Other kXR_attn frames (asking the client to
// reconnect elsewhere, or obsolete ones) are dropped: go-hep would panic
// on them too; the request they concern then times out.
//
// A kXR_wait (the server asks to re-send the request after some seconds)
// is passed on as a kXR_error (see waitAsError), directly or inside a
// kXR_asynresp.
func (r *relay) forward(down, up net.Conn) error {
	var hdr [16]byte
	buf := make([]byte, 8+smallFrame)
	waiting := map[[2]byte]bool{} // stream ids answered kXR_waitresp
	send := func(h []byte, n int64) error {
		if n <= smallFrame {
			b := append(buf[:0], h...)
			b = b[:8+n]
			if _, err := io.ReadFull(up, b[8:]); err != nil {
				return err
			}
			_, err := down.Write(b)
			return err
		}
		if _, err := down.Write(h); err != nil {
			return err
		}
		// TCP to TCP with a limit: splice(2), no copy through user space.
		_, err := io.CopyN(down, up, n)
		return err
	}
	discard := func(n int64) error {
		_, err := io.CopyN(io.Discard, up, n)
		return err
	}
	// sendWait passes a kXR_wait of n bytes on as a kXR_error.
	sendWait := func(sid [2]byte, n int64) error {
		if n > smallFrame {
			return fmt.Errorf("xrootd server sent a malformed kXR_wait (%d bytes)", n)
		}
		data := buf[:n]
		if _, err := io.ReadFull(up, data); err != nil {
			return err
		}
		e := waitAsError(data)
		b := make([]byte, 8, 8+len(e))
		copy(b, sid[:])
		binary.BigEndian.PutUint16(b[2:4], statusError)
		binary.BigEndian.PutUint32(b[4:8], uint32(len(e)))
		_, err := down.Write(append(b, e...))
		return err
	}
	for {
		if _, err := io.ReadFull(up, hdr[:8]); err != nil {
			return err
		}
		sid := [2]byte{hdr[0], hdr[1]}
		status := binary.BigEndian.Uint16(hdr[2:4])
		dlen := int64(binary.BigEndian.Uint32(hdr[4:8]))
		switch status {
		case statusWaitResp:
			waiting[sid] = true
			if err := discard(dlen); err != nil {
				return err
			}
		case statusAttn:
			if dlen < 16 {
				if err := discard(dlen); err != nil {
					return err
				}
				continue
			}
			if _, err := io.ReadFull(up, hdr[8:16]); err != nil {
				return err
			}
			if binary.BigEndian.Uint32(hdr[8:12]) != actAsynResp {
				if err := discard(dlen - 8); err != nil {
					return err
				}
				continue
			}
			// The embedded answer's header.
			if _, err := io.ReadFull(up, hdr[8:16]); err != nil {
				return err
			}
			esid := [2]byte{hdr[8], hdr[9]}
			estatus := binary.BigEndian.Uint16(hdr[10:12])
			elen := int64(binary.BigEndian.Uint32(hdr[12:16]))
			if elen != dlen-16 {
				return fmt.Errorf("xrootd server sent a malformed asynchronous answer (%d bytes in a frame of %d)", elen, dlen)
			}
			if !waiting[esid] {
				// No request waits for it: go-hep would panic.
				if err := discard(elen); err != nil {
					return err
				}
				continue
			}
			if estatus != statusOkSoFar {
				delete(waiting, esid)
				r.answers.Add(1)
			}
			if estatus == statusWait {
				if err := sendWait(esid, elen); err != nil {
					return err
				}
				continue
			}
			if err := send(hdr[8:16], elen); err != nil {
				return err
			}
		case statusWait:
			r.answers.Add(1)
			if err := sendWait(sid, dlen); err != nil {
				return err
			}
		default:
			if status != statusOkSoFar {
				r.answers.Add(1)
			}
			if err := send(hdr[:8], dlen); err != nil {
				return err
			}
		}
	}
}
