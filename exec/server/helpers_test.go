package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// testServer is a real server on a loopback port with a real database.
type testServer struct {
	*Server
	url   string
	token string
	db    string
	stop  func()
}

// startServer starts a server on 127.0.0.1; it stops with the test.
func startServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	if opts.DB == "" {
		opts.DB = filepath.Join(t.TempDir(), "history.db")
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Addr = ln.Addr().String()
	s, err := New(opts)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	ts := &testServer{Server: s, url: "http://" + opts.Addr, token: opts.Token, db: opts.DB}
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	t.Cleanup(ts.stop)
	return ts
}

// do sends a request with the server's token and returns the status and body.
func (ts *testServer) do(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, ts.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if ts.token != "" {
		req.Header.Set("Authorization", "Bearer "+ts.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// must sends a request that must succeed (2xx).
func (ts *testServer) must(t testing.TB, method, path string, body any) []byte {
	t.Helper()
	code, data := ts.do(t, method, path, body)
	if code/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, code, data)
	}
	return data
}

func newID(t testing.TB) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// peerPlan is a plan shaped like the peer workload: selections per dataset,
// file and systematic, histograms per dataset and systematic reading their
// selections, datacards per systematic reading the histograms, and "all".
func peerPlan(d, f, s int) []api.PlannedAction {
	var p []api.PlannedAction
	add := func(target, mnem string, deps []int32) int32 {
		id := int32(len(p))
		p = append(p, api.PlannedAction{ID: id, Target: "//:" + target, Mnemonic: mnem, Deps: deps})
		return id
	}
	sel := make([][][]int32, d)
	for di := range d {
		sel[di] = make([][]int32, s)
		for fi := range f {
			for si := range s {
				sel[di][si] = append(sel[di][si], add(fmt.Sprintf("sel_d%d_f%d_s%d", di, fi, si), "Select", nil))
			}
		}
	}
	hist := make([][]int32, s)
	for di := range d {
		for si := range s {
			hist[si] = append(hist[si], add(fmt.Sprintf("hist_d%d_s%d", di, si), "Histogram", sel[di][si]))
		}
	}
	var cards []int32
	for si := range s {
		cards = append(cards, add(fmt.Sprintf("card_s%d", si), "Datacard", hist[si]))
	}
	add("all", "Combine", cards)
	return p
}

// startBuild announces a build of total actions and returns its id.
func (ts *testServer) startBuild(t testing.TB, total int) string {
	t.Helper()
	id := newID(t)
	ts.must(t, "POST", api.PathBuilds, api.BuildStart{ID: id, User: "ana", Host: "lx01", Workspace: "/home/ana/an",
		Targets: []string{"//:all"}, Command: []string{"build", "//:all"}, Started: time.Now().UTC(), Version: "devel", Total: total})
	return id
}

func (ts *testServer) batch(t testing.TB, id string, b api.Batch) {
	t.Helper()
	ts.must(t, "POST", fmt.Sprintf(api.PathBatch, id), b)
}

func ev(typ string, action int32, at time.Time) api.Event {
	return api.Event{Type: typ, Action: action, Time: at}
}
