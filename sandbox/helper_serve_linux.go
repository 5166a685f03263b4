package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// serverConn is a helper's end of its SOCK_SEQPACKET socket to the caller
// (see resident): a residentRequest per packet in, with the descriptors
// it names passed along, and a residentReply per packet out. Both the
// resident sandbox and the reaper serve on one.
type serverConn struct {
	fd       int // the socket to the caller
	buf, oob []byte
}

func newServerConn(fd int) serverConn {
	return serverConn{fd: fd, buf: make([]byte, maxResidentMsg), oob: make([]byte, unix.CmsgSpace(2*4))}
}

var errEOF = errors.New("caller hung up")

// read reads one message and the descriptors passed with it.
func (r *serverConn) read() (residentRequest, []int, error) {
	var req residentRequest
	for {
		n, oobn, _, _, err := unix.Recvmsg(r.fd, r.buf, r.oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err == nil && n == 0 {
			err = errEOF
		}
		if err != nil {
			return req, nil, err
		}
		var fds []int
		if oobn > 0 {
			if fds, err = parseRights(r.oob[:oobn]); err != nil {
				return req, nil, err
			}
		}
		if err := json.Unmarshal(r.buf[:n], &req); err != nil {
			closeAll(fds)
			return req, nil, err
		}
		return req, fds, nil
	}
}

func (r *serverConn) reply(rep residentReply) error {
	b := appendReply(make([]byte, 0, 64), rep)
	for {
		_, err := unix.Write(r.fd, b)
		if err != unix.EINTR {
			return err
		}
	}
}

// appendReply appends rep as json.Marshal encodes it, without the
// reflection that cost a reaper a few percent of its CPU per command.
func appendReply(b []byte, rep residentReply) []byte {
	b = append(b, '{')
	field := func(name string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	str := func(name, s string) {
		if s != "" {
			field(name)
			q, _ := json.Marshal(s) // a string always encodes
			b = append(b, q...)
		}
	}
	if rep.Ready {
		field("Ready")
		b = append(b, "true"...)
	}
	if rep.Status != 0 {
		field("Status")
		b = strconv.AppendInt(b, int64(rep.Status), 10)
	}
	if rep.CPU != 0 {
		field("CPU")
		b = strconv.AppendInt(b, rep.CPU, 10)
	}
	str("StartErr", rep.StartErr)
	str("Err", rep.Err)
	if rep.Retire {
		field("Retire")
		b = append(b, "true"...)
	}
	return append(b, '}')
}

// parseReply decodes a reply as json.Unmarshal does. What appendReply
// writes for a command that ran (numbers and true, no strings) is read
// directly; anything else goes through json.Unmarshal, whose reflection
// took a few percent of hepbuild's CPU per command.
func parseReply(b []byte) (residentReply, error) {
	slow := func() (residentReply, error) {
		var rep residentReply
		err := json.Unmarshal(b, &rep)
		return rep, err
	}
	body, ok := bytes.CutPrefix(b, []byte("{"))
	if !ok {
		return slow()
	}
	if body, ok = bytes.CutSuffix(body, []byte("}")); !ok || bytes.ContainsAny(body, "\\ {}[]\t\r\n") {
		return slow()
	}
	var rep residentReply
	for more := len(body) > 0; more; {
		var field []byte
		field, body, more = bytes.Cut(body, []byte(","))
		name, value, ok := bytes.Cut(field, []byte(":"))
		if !ok || len(value) == 0 {
			return slow()
		}
		var err error
		switch string(name) {
		case `"Ready"`:
			ok = string(value) == "true"
			rep.Ready = true
		case `"Retire"`:
			ok = string(value) == "true"
			rep.Retire = true
		case `"Status"`:
			var n int64
			n, err = strconv.ParseInt(string(value), 10, 0)
			rep.Status = int(n)
		case `"CPU"`:
			rep.CPU, err = strconv.ParseInt(string(value), 10, 64)
		default:
			ok = false
		}
		// JSON has no plus sign and no leading zero, which ParseInt takes.
		if !ok || err != nil || value[0] == '+' || (len(value) > 1 && (value[0] == '0' || value[0] == '-' && value[1] == '0')) {
			return slow()
		}
	}
	return rep, nil
}

// commandFiles are the stdin, stdout and stderr of a requested command:
// the passed descriptors the request names, null for the others.
func commandFiles(req residentRequest, fds []int, null int) ([]uintptr, error) {
	files := []uintptr{uintptr(null), uintptr(null), uintptr(null)}
	for i, n := range []int{req.Stdout, req.Stderr} {
		if n < 0 {
			continue
		}
		if n >= len(fds) {
			return nil, fmt.Errorf("descriptor %d was not passed", n)
		}
		files[i+1] = uintptr(fds[n])
	}
	return files, nil
}

// A helper (a reaper, a resident sandbox) waits in blocking system calls:
// for the caller's message, for the command's end (poll). While another P
// is idle, the runtime lets a goroutine keep its P through a system call
// of up to 10 ms; but sysmon takes the P, and signals the thread, at every
// tick (down to 20 µs) once the P has run the same goroutine for 10 ms,
// and a goroutine that only ever blocks in system calls is never scheduled
// anew. Profiles put a fifth of a reaper's CPU and a third of a resident
// sandbox's in sysmon for that. Waiting through the runtime's poller
// instead schedules the goroutine anew at every wait, but then the
// runtime sees every P idle, sysmon sleeps, and the first system call
// after each wait wakes it to its shortest period: that cost more than it
// saved. So a helper yields before it waits, every few milliseconds. It
// yields on the main thread, to which the runtime locks the goroutine
// that runs init (and the resident sandbox locks itself, for its
// capabilities), so each yield hands the P to another thread and back;
// the storm cost more. The reaper stays on the main thread: a SIGKILL
// makes that thread a zombie, which says the reaper is gone, while the
// others still exit, and a reader among them could take a request with
// it, which the caller would then take for a command that ran and ended
// without a word.

// waitYield yields before waits often enough that sysmon never sees the
// goroutine run 10 ms unscheduled. Not safe for concurrent use.
type waitYield struct{ last time.Time }

func (y *waitYield) beforeWait() {
	if now := time.Now(); now.Sub(y.last) >= 4*time.Millisecond {
		runtime.Gosched()
		y.last = now
	}
}
