package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

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
