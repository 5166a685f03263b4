package remote

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	cacheremote "github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/exec"
)

// freezer forwards TCP connections to a server and can stop passing
// bytes on while keeping the connections open: a server (or network)
// that stalls without failing.
type freezer struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{l: l, target: target}
	f.cond = sync.NewCond(&f.mu)
	go f.serve()
	t.Cleanup(f.close)
	return f
}

func (f *freezer) addr() string { return f.l.Addr().String() }

func (f *freezer) serve() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, s)
		f.mu.Unlock()
		go f.pipe(s, c)
		go f.pipe(c, s)
	}
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		f.mu.Lock()
		for f.frozen {
			f.cond.Wait()
		}
		f.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				dst.(*net.TCPConn).CloseWrite()
			}
			return
		}
	}
}

func (f *freezer) freeze(on bool) {
	f.mu.Lock()
	f.frozen = on
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *freezer) close() {
	f.freeze(false)
	f.l.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

// A stream that goes silent is re-attached with WaitExecution, to the
// same operation, and the result arrives once the server speaks again; a
// server that stays silent is an error, not a hang.
func TestStalledStream(t *testing.T) {
	c := start(t)
	fz := newFreezer(t, c.bb.Addr)
	ctx := context.Background()
	connect := func(reattach int) *Executor {
		e, err := New(ctx, "grpc://"+fz.addr(), cacheremote.Options{Timeout: 5 * time.Second},
			WithStallTimeout(1500*time.Millisecond), WithReattachments(reattach, 200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	run := func(e *Executor, script string, thaw time.Duration) (*exec.ExecResponse, []exec.JobUpdate, error) {
		root := workspace(t)
		req := request(t, bashAction(script), root)
		pl := newProgressLog()
		req.Progress = pl.add
		type result struct {
			resp *exec.ExecResponse
			err  error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := e.Execute(ctx, req)
			done <- result{resp, err}
		}()
		select {
		case <-pl.running:
		case <-time.After(20 * time.Second):
			t.Fatal("the action did not start running")
		}
		fz.freeze(true)
		if thaw > 0 {
			time.AfterFunc(thaw, func() { fz.freeze(false) })
		}
		select {
		case r := <-done:
			fz.freeze(false)
			pl.mu.Lock()
			defer pl.mu.Unlock()
			return r.resp, pl.updates, r.err
		case <-time.After(40 * time.Second):
			fz.freeze(false)
			t.Fatal("Execute hangs on a silent stream")
		}
		return nil, nil, nil
	}

	t.Run("thaws", func(t *testing.T) {
		resp, updates, err := run(connect(5), "sleep 1; mkdir -p hepbuild-out/pkg; echo thawed > hepbuild-out/pkg/out.txt", 3500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Result.Success() || resp.ActionResult == nil {
			t.Fatalf("got %+v", resp)
		}
		var running string
		for _, u := range updates {
			if u.State == exec.JobRunning {
				running = u.JobID
				break
			}
		}
		if running == "" || resp.Where != "reapi "+running {
			t.Errorf("result from %q, the action ran as %q: want the same operation, re-attached", resp.Where, running)
		}
	})
	t.Run("stays silent", func(t *testing.T) {
		_, _, err := run(connect(2), "sleep 20", 0)
		if err == nil || !strings.Contains(err.Error(), "no word from the server") {
			t.Fatalf("got %v, want a stalled-stream error", err)
		}
		t.Logf("error: %v", err)
	})
}
