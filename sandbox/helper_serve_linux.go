package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"

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
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	for {
		_, err = unix.Write(r.fd, b)
		if err != unix.EINTR {
			return err
		}
	}
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
