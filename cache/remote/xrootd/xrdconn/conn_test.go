package xrdconn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go-hep.org/x/hep/xrootd"
	"go-hep.org/x/hep/xrootd/xrdproto"

	"github.com/hepbuild/hepbuild/cache/remote"
)

// waitErr is what go-hep returns for a kXR_wait the relay turned into an
// error (see waitAsError).
func waitErr(secs string) error {
	return xrdproto.ServerError{Code: errWait, Message: secs + " Job resources currently not available."}
}

func TestServerWait(t *testing.T) {
	secs, msg, ok := serverWait(waitErr("30"))
	if !ok || secs != 30 || msg != "Job resources currently not available." {
		t.Errorf("serverWait: %d %q %v", secs, msg, ok)
	}
	if _, _, ok := serverWait(xrdproto.ServerError{Code: xrdproto.NotFound, Message: "30 no"}); ok {
		t.Error("serverWait took kXR_NotFound for a kXR_wait")
	}
}

// A request the server answers kXR_wait is sent again within the call's
// deadline, sooner than the 30 s XRootD asks for when its checksum job
// table is full (and which would outlast the call); a server that keeps
// asking is ErrTransient at the deadline, not a hang.
func TestRunRetriesWait(t *testing.T) {
	c := New(Config{Addr: "127.0.0.1:1", Timeout: 5 * time.Second})
	tries := 0
	start := time.Now()
	err := runOp(c, func(context.Context, *xrootd.Client) error {
		tries++
		if tries < 3 {
			return waitErr("30")
		}
		return nil
	})
	if err != nil || tries != 3 {
		t.Errorf("after two kXR_wait: %v, %d tries", err, tries)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two kXR_wait took %v", d)
	}

	c = New(Config{Addr: "127.0.0.1:1", Timeout: time.Second})
	start = time.Now()
	err = runOp(c, func(context.Context, *xrootd.Client) error { return waitErr("30") })
	if !errors.Is(err, remote.ErrTransient) || !strings.Contains(err.Error(), "busy") {
		t.Errorf("a server that keeps asking to wait: %v, want ErrTransient saying it is busy", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a server that keeps asking to wait took %v, the timeout is 1s", d)
	}
}

// runOp runs op as Call does, on no client (op does not use one).
func runOp(c *Conn, op func(context.Context, *xrootd.Client) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	return c.run(ctx, "query", nil, op)
}
