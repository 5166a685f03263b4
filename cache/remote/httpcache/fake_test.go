package httpcache

// The tests in this file use an in-process fake server (httptest): a real
// server cannot be made to lie about content, stall mid-body or fail on
// demand. Everything else is tested against bazel-remote and nginx.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/remotetest"
)

func fake(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// TestGetVerifies: a body that is short, long or different from its digest
// ends in an error, never io.EOF. Bodies are chunked (flushed, no
// Content-Length) so the reader, not the header check, must catch them.
func TestGetVerifies(t *testing.T) {
	b, d := remotetest.Blob(t, 5000)
	flipped := bytes.Clone(b)
	flipped[4999] ^= 1
	for name, body := range map[string][]byte{
		"short":     b[:4999],
		"long":      append(bytes.Clone(b), 'x'),
		"different": flipped,
	} {
		t.Run(name, func(t *testing.T) {
			s := fake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Write(body[:100])
				w.(http.Flusher).Flush()
				w.Write(body[100:])
			})
			c := open(t, s.URL, remote.Options{})
			rc, err := c.Get(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if _, err := io.ReadAll(rc); err == nil {
				t.Fatal("reading a body that does not match its digest ended without error")
			}
			// And a second read does not turn it into EOF.
			if _, err := rc.Read(make([]byte, 10)); err == nil || err == io.EOF {
				t.Errorf("read after the error: %v, want the error again", err)
			}
		})
	}
	t.Run("match", func(t *testing.T) {
		s := fake(t, func(w http.ResponseWriter, r *http.Request) {
			w.Write(b[:100])
			w.(http.Flusher).Flush()
			w.Write(b[100:])
		})
		rc, err := open(t, s.URL, remote.Options{}).Get(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("a matching body: %d bytes, %v", len(got), err)
		}
	})
}

// TestStall: a server that stops sending mid-body fails the read within
// about Timeout, as transient; one that sends slowly but steadily for
// longer than Timeout in total is not cut.
func TestStall(t *testing.T) {
	b, d := remotetest.Blob(t, 10000)
	release := make(chan struct{})
	defer close(release)
	s := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10000")
		if r.URL.Query().Has("slow") || strings.Contains(r.Header.Get("X-Mode"), "slow") {
			for i := 0; i < 10; i++ {
				w.Write(b[i*1000 : (i+1)*1000])
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
			return
		}
		w.Write(b[:5000])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second): // fail rather than hang if the client never gives up
		}
	})
	const timeout = 400 * time.Millisecond
	c := open(t, s.URL, remote.Options{Timeout: timeout})
	rc, err := c.Get(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, remote.ErrTransient) {
		t.Errorf("reading a stalled body: %v, want remote.ErrTransient", err)
	}
	if el := time.Since(start); el > 5*timeout {
		t.Errorf("the stall was noticed after %v, timeout %v", el, timeout)
	}

	slow := open(t, s.URL, remote.Options{Timeout: timeout, Headers: []remote.Header{{Name: "X-Mode", Value: "slow"}}})
	rc, err = slow.Get(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, b) {
		t.Errorf("a slow but steady transfer of 1 s with a %v timeout: %d bytes, %v", timeout, len(got), err)
	}
}

func TestUnavailable(t *testing.T) {
	s := fake(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	c := open(t, s.URL, remote.Options{})
	ctx := context.Background()
	b, d := remotetest.Blob(t, 100)
	big, bigD := remotetest.Blob(t, int(c.BatchLimit())+10)
	for name, f := range map[string]func() error{
		"Check":    func() error { _, err := c.Check(ctx); return err },
		"Contains": func() error { _, err := c.Contains(ctx, d); return err },
		"Get":      func() error { _, err := c.Get(ctx, d); return err },
		"Put":      func() error { return c.Put(ctx, d, bytes.NewReader(b)) },
		"PutLarge": func() error { return c.Put(ctx, bigD, bytes.NewReader(big)) },
		"GetAC":    func() error { _, err := c.GetActionResult(ctx, d); return err },
		"FindMissing": func() error {
			_, err := c.FindMissing(ctx, []cache.Digest{d, bigD})
			return err
		},
	} {
		if err := f(); !errors.Is(err, remote.ErrTransient) {
			t.Errorf("%s against a 503: %v, want remote.ErrTransient", name, err)
		}
	}

	// A server that is not there at all.
	s.Close()
	if _, err := c.Check(ctx); !errors.Is(err, remote.ErrTransient) {
		t.Errorf("Check of a closed port: %v, want remote.ErrTransient", err)
	}
}

// TestHeaders: the configured headers and the URL's basic credential go
// with every request, and no error text shows them.
func TestHeaders(t *testing.T) {
	const token = "Bearer tok-123456"
	var mu sync.Mutex
	var bad []string
	store := map[string][]byte{}
	s := fake(t, func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if r.Header.Get("X-Analysis-Token") != token || user != "u" || pass != "pw-987" {
			mu.Lock()
			bad = append(bad, r.Method+" "+r.URL.Path)
			mu.Unlock()
		}
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			store[r.URL.Path] = b
		case http.MethodGet, http.MethodHead:
			b, ok := store[r.URL.Path]
			if !ok {
				http.Error(w, "forbidden here", http.StatusForbidden)
				return
			}
			w.Write(b)
		}
	})
	c := open(t, strings.Replace(s.URL, "://", "://u:pw-987@", 1),
		remote.Options{Headers: []remote.Header{{Name: "X-Analysis-Token", Value: token}}})
	ctx := context.Background()
	b, d := remotetest.Blob(t, 100)
	big, bigD := remotetest.Blob(t, int(c.BatchLimit())+10)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Put(ctx, d, bytes.NewReader(b)))
	must(c.Put(ctx, bigD, bytes.NewReader(big)))
	must(c.PutBatch(ctx, map[cache.Digest][]byte{d: b}))
	rc, err := c.Get(ctx, bigD)
	must(err)
	_, err = io.ReadAll(rc)
	rc.Close()
	must(err)
	_, err = c.GetBatch(ctx, []cache.Digest{d})
	must(err)
	_, err = c.FindMissing(ctx, []cache.Digest{d, bigD})
	must(err)
	must(c.PutActionResult(ctx, d, &repb.ActionResult{ExitCode: 3}))
	ar, err := c.GetActionResult(ctx, d)
	must(err)
	if ar.GetExitCode() != 3 {
		t.Errorf("action result: %v", ar)
	}
	// An absent blob draws a 403 here: the error must not show the credentials.
	_, absent := remotetest.Blob(t, 10)
	_, err = c.Get(ctx, absent)
	if !errors.Is(err, remote.ErrDenied) {
		t.Errorf("Get answered 403: %v, want remote.ErrDenied", err)
	}
	if err != nil && (strings.Contains(err.Error(), "tok-123456") || strings.Contains(err.Error(), "pw-987")) {
		t.Errorf("the error shows a credential: %v", err)
	}
	if len(bad) > 0 {
		t.Errorf("requests without the header or credential: %v", bad)
	}
}

// TestPutLargeWrongContent: a large blob whose content turns out not to
// match its digest never reaches the server as a complete body, wherever
// the difference is (first byte, last byte, one byte short, one too many).
func TestPutLargeWrongContent(t *testing.T) {
	type result struct {
		n        int
		complete bool
	}
	results := make(chan result, 10)
	s := fake(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		results <- result{len(b), err == nil && int64(len(b)) == r.ContentLength}
	})
	c := open(t, s.URL, remote.Options{})
	b, d := remotetest.Blob(t, 3<<20)
	first, last := bytes.Clone(b), bytes.Clone(b)
	first[0] ^= 1
	last[len(last)-1] ^= 1
	for name, content := range map[string][]byte{
		"first": first, "last": last, "short": b[:len(b)-1], "long": append(bytes.Clone(b), 0),
	} {
		t.Run(name, func(t *testing.T) {
			if err := c.Put(context.Background(), d, bytes.NewReader(content)); err == nil {
				t.Fatal("Put of content that does not match its digest succeeded")
			}
			select {
			case r := <-results:
				if r.complete {
					t.Errorf("the server received a complete body of %d bytes", r.n)
				}
			case <-time.After(10 * time.Second):
				// The client may abort before the server's handler runs.
			}
		})
	}
	// The matching content goes through whole.
	if err := c.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if r := <-results; !r.complete || r.n != len(b) {
		t.Errorf("the server received %d bytes (complete %v) of a matching %d-byte blob", r.n, r.complete, len(b))
	}
}
