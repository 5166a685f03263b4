package xrdconn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func frame(sid [2]byte, status uint16, data []byte) []byte {
	b := make([]byte, 8, 8+len(data))
	copy(b, sid[:])
	binary.BigEndian.PutUint16(b[2:], status)
	binary.BigEndian.PutUint32(b[4:], uint32(len(data)))
	return append(b, data...)
}

// attn is a kXR_attn frame of action act carrying body.
func attn(act uint32, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint32(b, act)
	return frame([2]byte{0, 0}, statusAttn, append(b, body...))
}

// What the server sends, what go-hep must see: the kXR_waitresp is
// swallowed and the delayed answer arrives as an ordinary frame of its
// stream; unsolicited kXR_attn frames (other actions, or answers nobody
// waits for) never reach go-hep, which would panic on them; everything
// else passes unchanged, large frames included.
func TestForwardFrames(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), smallFrame/8+3)
	answer := frame([2]byte{0, 3}, 0, []byte("adler32 0a1b2c3d\x00"))
	var in, want []byte
	add := func(server []byte, client ...[]byte) {
		in = append(in, server...)
		for _, c := range client {
			want = append(want, c...)
		}
	}
	add(frame([2]byte{0, 0}, 0, []byte{0, 0, 5, 0, 0, 0, 0, 1}), frame([2]byte{0, 0}, 0, []byte{0, 0, 5, 0, 0, 0, 0, 1}))
	add(frame([2]byte{0, 3}, statusWaitResp, []byte("\x00\x00\x02XJob scheduled.")))
	add(frame([2]byte{0, 4}, statusOkSoFar, big[:100]), frame([2]byte{0, 4}, statusOkSoFar, big[:100]))
	add(frame([2]byte{0, 4}, 0, big), frame([2]byte{0, 4}, 0, big))
	add(attn(5002, []byte("asyncms message")))                              // kXR_asyncms: dropped
	add(attn(actAsynResp, frame([2]byte{0, 9}, 0, []byte("nobody waits")))) // no kXR_waitresp for 0,9
	add(attn(actAsynResp, answer), answer)
	add(attn(actAsynResp, answer)) // answered already
	add(frame([2]byte{0, 5}, 4003, []byte("\x00\x00\x0b\xb9no such file\x00")), frame([2]byte{0, 5}, 4003, []byte("\x00\x00\x0b\xb9no such file\x00")))
	// kXR_wait, which go-hep would sleep out past any deadline: an error
	// carrying the seconds, directly and as a delayed answer.
	add(frame([2]byte{0, 6}, statusWait, []byte("\x00\x00\x00\x1eJob resources currently not available.")),
		frame([2]byte{0, 6}, statusError, []byte("\x00\x00\x0f\xa530 Job resources currently not available.\x00")))
	add(frame([2]byte{0, 7}, statusWaitResp, []byte("\x00\x00\x02XJob scheduled.")))
	add(attn(actAsynResp, frame([2]byte{0, 7}, statusWait, []byte("\x00\x00\x00\x05later\x00"))),
		frame([2]byte{0, 7}, statusError, []byte("\x00\x00\x0f\xa55 later\x00")))

	serverSide, relayUp := net.Pipe()
	relayDown, clientSide := net.Pipe()
	r := &relay{answers: new(atomic.Int64)}
	done := make(chan error, 1)
	go func() { done <- r.forward(relayDown, relayUp) }()
	go func() {
		serverSide.Write(in)
		serverSide.Close()
	}()
	var got bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&got, clientSide); close(copied) }()
	if err := <-done; err != io.EOF {
		t.Errorf("forward: %v, want io.EOF at the server's end", err)
	}
	relayDown.Close()
	<-copied
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("what go-hep sees (%d bytes, want %d): mismatch (-want +got):\n%s", got.Len(), len(want),
			cmp.Diff(summary(want), summary(got.Bytes())))
	}
	if n := r.answers.Load(); n != 6 {
		t.Errorf("answers %d, want 6", n)
	}
}

// summary lists frames as "sid status dlen" for a readable diff.
func summary(b []byte) []string {
	var s []string
	for len(b) >= 8 {
		n := int(binary.BigEndian.Uint32(b[4:8]))
		s = append(s, fmt.Sprintf("%d %d %d", b[1], binary.BigEndian.Uint16(b[2:4]), n))
		if len(b) < 8+n {
			break
		}
		b = b[8+n:]
	}
	return s
}
