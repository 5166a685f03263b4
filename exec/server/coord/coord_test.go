package coord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/server/api"
	"github.com/hepbuild/hepbuild/graph"
)

// hang bounds a wait for something that must happen: it catches a hang.
const hang = 60 * time.Second

var (
	buildA = strings.Repeat("a", api.IDLen)
	buildB = strings.Repeat("b", api.IDLen)
	buildC = strings.Repeat("c", api.IDLen)
)

func key(name string) string { return cache.FromBytes([]byte(name)).String() }

// fakeClock is a clock that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func start(t *testing.T, opts ServerOptions) (*Server, string) {
	t.Helper()
	s := NewServer(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// post sends v to path and returns the status and the decoded claim answer.
func post(t *testing.T, url, path string, v any) (int, api.ClaimResponse) {
	t.Helper()
	var body []byte
	if b, ok := v.([]byte); ok {
		body = b
	} else {
		body, _ = json.Marshal(v)
	}
	resp, err := http.Post(url+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, api.ClaimResponse{}
	}
	defer resp.Body.Close()
	var cr api.ClaimResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&cr); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	return resp.StatusCode, cr
}

func claimKey(t *testing.T, url, build, k string, wait time.Duration) api.ClaimResponse {
	t.Helper()
	code, cr := post(t, url, api.PathClaim, api.ClaimRequest{Build: build, Key: k, Target: "//pkg:t", Wait: int64(wait)})
	if code != http.StatusOK {
		t.Errorf("claim of %s by %s: status %d", k, build[:1], code)
	}
	return cr
}

func release(t *testing.T, url, build, k string, ok bool) {
	t.Helper()
	if code, _ := post(t, url, api.PathRelease, api.ReleaseRequest{Build: build, Key: k, OK: ok}); code != http.StatusNoContent {
		t.Errorf("release: status %d", code)
	}
}

// claimAsync claims on its own goroutine.
func claimAsync(t *testing.T, url, build, k string) <-chan api.ClaimResponse {
	ch := make(chan api.ClaimResponse, 1)
	go func() { ch <- claimKey(t, url, build, k, api.MaxClaimWait) }()
	return ch
}

// waitWaiters waits until n claim requests wait on the server.
func waitWaiters(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for {
		s.mu.Lock()
		w := s.waiters
		s.mu.Unlock()
		if w == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d claims wait, want %d", w, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func answer(t *testing.T, ch <-chan api.ClaimResponse) api.ClaimResponse {
	t.Helper()
	select {
	case cr := <-ch:
		return cr
	case <-time.After(hang):
		t.Fatal("no answer")
		return api.ClaimResponse{}
	}
}

func TestValidation(t *testing.T) {
	_, url := start(t, ServerOptions{})
	long := strings.Repeat("x", api.MaxString+1)
	for _, c := range []struct {
		name string
		path string
		body any
		want int
	}{
		{"short build id", api.PathClaim, api.ClaimRequest{Build: "abc", Key: key("k")}, 400},
		{"upper-case build id", api.PathClaim, api.ClaimRequest{Build: strings.Repeat("A", api.IDLen), Key: key("k")}, 400},
		{"key without size", api.PathClaim, api.ClaimRequest{Build: buildA, Key: strings.Repeat("0", 64)}, 400},
		{"key with upper case", api.PathClaim, api.ClaimRequest{Build: buildA, Key: strings.ToUpper(key("k"))}, 400},
		{"key not hex", api.PathClaim, api.ClaimRequest{Build: buildA, Key: strings.Repeat("g", 64) + "/1"}, 400},
		{"target too long", api.PathClaim, api.ClaimRequest{Build: buildA, Key: key("k"), Target: long}, 400},
		{"negative wait", api.PathClaim, api.ClaimRequest{Build: buildA, Key: key("k"), Wait: -1}, 400},
		{"not JSON", api.PathClaim, []byte("claim it"), 400},
		{"two values", api.PathClaim, []byte(`{"build":"` + buildA + `","key":"` + key("k") + `"} {}`), 400},
		{"too large", api.PathClaim, append(append([]byte(`{"target":"`), bytes.Repeat([]byte("x"), api.MaxBody)...), '"', '}'), 413},
		{"renew bad key", api.PathRenew, api.RenewRequest{Build: buildA, Keys: []string{"x"}}, 400},
		{"release bad build", api.PathRelease, api.ReleaseRequest{Build: "", Key: key("k")}, 400},
		{"unknown path", "/api/v1/claims/steal", api.ClaimRequest{}, 404},
		{"good claim", api.PathClaim, api.ClaimRequest{Build: buildA, Key: key("k")}, 200},
		{"good renew", api.PathRenew, api.RenewRequest{Build: buildA, Keys: []string{key("k")}}, 204},
		{"good release", api.PathRelease, api.ReleaseRequest{Build: buildA, Key: key("k")}, 204},
	} {
		if code, _ := post(t, url, c.path, c.body); code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, code, c.want)
		}
	}
	resp, err := http.Get(url + api.PathClaim)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", resp.StatusCode)
	}
}

// A holder that stores its result tells its waiters, and late claimers, to
// look in the cache; a build whose cache lacks it after all gets the claim.
func TestDoneAndLateClaimers(t *testing.T) {
	s, url := start(t, ServerOptions{Holder: func(b string) (string, string) { return "user-" + b[:1], "host" }})
	k := key("sel")
	if cr := claimKey(t, url, buildA, k, 0); cr.State != api.ClaimGranted || cr.Lease != int64(DefaultLease) {
		t.Fatalf("first claim: %+v", cr)
	}
	cr := claimKey(t, url, buildB, k, 0)
	if cr.State != api.ClaimHeld || cr.Holder == nil || *cr.Holder != (api.Holder{Build: buildA, User: "user-a", Host: "host", Target: "//pkg:t"}) {
		t.Fatalf("claim of a held key: %+v %+v", cr, cr.Holder)
	}
	if cr := claimKey(t, url, buildA, k, 0); cr.State != api.ClaimGranted {
		t.Errorf("the holder's repeated claim: %+v", cr)
	}
	waiter := claimAsync(t, url, buildB, k)
	waitWaiters(t, s, 1)
	release(t, url, buildA, k, true)
	if cr := answer(t, waiter); cr.State != api.ClaimDone {
		t.Errorf("waiter: %+v, want done", cr)
	}
	if cr := claimKey(t, url, buildC, k, 0); cr.State != api.ClaimDone {
		t.Errorf("late claimer: %+v, want done", cr)
	}
	// B's cache did not have it: B claims again, and runs it.
	if cr := claimKey(t, url, buildB, k, 0); cr.State != api.ClaimGranted {
		t.Errorf("claim after done: %+v, want granted", cr)
	}
	if cr := claimKey(t, url, buildC, k, 0); cr.State != api.ClaimHeld {
		t.Errorf("C while B runs it again: %+v, want held", cr)
	}
}

// A holder that fails hands its claim to exactly one waiter.
func TestFailedHolderGrantsOneWaiter(t *testing.T) {
	s, url := start(t, ServerOptions{})
	k := key("sel")
	claimKey(t, url, buildA, k, 0)
	b, c := claimAsync(t, url, buildB, k), claimAsync(t, url, buildC, k)
	waitWaiters(t, s, 2)
	release(t, url, buildA, k, false)
	var winner string
	var loser <-chan api.ClaimResponse
	select {
	case cr := <-b:
		winner, loser = buildB, c
		if cr.State != api.ClaimGranted {
			t.Fatalf("B: %+v", cr)
		}
	case cr := <-c:
		winner, loser = buildC, b
		if cr.State != api.ClaimGranted {
			t.Fatalf("C: %+v", cr)
		}
	case <-time.After(hang):
		t.Fatal("nobody got the claim")
	}
	waitWaiters(t, s, 1) // the other still waits
	release(t, url, winner, k, true)
	if cr := answer(t, loser); cr.State != api.ClaimDone {
		t.Errorf("the other waiter: %+v, want done", cr)
	}
}

// A claim that is not renewed expires: its waiters get it.
func TestLeaseExpires(t *testing.T) {
	_, url := start(t, ServerOptions{Lease: 100 * time.Millisecond})
	k := key("sel")
	claimKey(t, url, buildA, k, 0)
	if cr := claimKey(t, url, buildB, k, api.MaxClaimWait); cr.State != api.ClaimGranted {
		t.Errorf("after the lease: %+v, want granted", cr)
	}
}

// Renewals keep a claim; without them it ends with its lease.
func TestRenewal(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, url := start(t, ServerOptions{Now: clock.Now})
	kept, lost := key("kept"), key("lost")
	claimKey(t, url, buildA, kept, 0)
	claimKey(t, url, buildA, lost, 0)
	clock.advance(20 * time.Second)
	if code, _ := post(t, url, api.PathRenew, api.RenewRequest{Build: buildA, Keys: []string{kept}}); code != http.StatusNoContent {
		t.Fatalf("renew: %d", code)
	}
	clock.advance(20 * time.Second)
	if cr := claimKey(t, url, buildB, kept, 0); cr.State != api.ClaimHeld {
		t.Errorf("renewed claim: %+v, want held", cr)
	}
	if cr := claimKey(t, url, buildB, lost, 0); cr.State != api.ClaimGranted {
		t.Errorf("claim not renewed: %+v, want granted", cr)
	}
	// Another build cannot renew what it does not hold.
	clock.advance(25 * time.Second)
	post(t, url, api.PathRenew, api.RenewRequest{Build: buildC, Keys: []string{kept}})
	clock.advance(10 * time.Second)
	if cr := claimKey(t, url, buildC, kept, 0); cr.State != api.ClaimGranted {
		t.Errorf("after the renewed lease: %+v, want granted", cr)
	}
}

func TestReleaseBuild(t *testing.T) {
	s, url := start(t, ServerOptions{})
	k := key("sel")
	claimKey(t, url, buildA, k, 0)
	w := claimAsync(t, url, buildB, k)
	waitWaiters(t, s, 1)
	s.ReleaseBuild(buildA)
	if cr := answer(t, w); cr.State != api.ClaimGranted {
		t.Errorf("after the holder's build ended: %+v, want granted", cr)
	}
	if n := s.Claims(); n != 1 {
		t.Errorf("%d claims, want 1", n)
	}
}

func TestLimits(t *testing.T) {
	s, url := start(t, ServerOptions{MaxClaimsPerBuild: 1, MaxClaims: 2, MaxWaiters: 1})
	claimKey(t, url, buildA, key("1"), 0)
	if code, _ := post(t, url, api.PathClaim, api.ClaimRequest{Build: buildA, Key: key("2")}); code != http.StatusTooManyRequests {
		t.Errorf("a second claim of one build: status %d, want 429", code)
	}
	claimKey(t, url, buildB, key("2"), 0)
	if code, _ := post(t, url, api.PathClaim, api.ClaimRequest{Build: buildC, Key: key("3")}); code != http.StatusServiceUnavailable {
		t.Errorf("a claim beyond the total: status %d, want 503", code)
	}
	w := claimAsync(t, url, buildB, key("1"))
	waitWaiters(t, s, 1)
	if code, _ := post(t, url, api.PathClaim, api.ClaimRequest{Build: buildC, Key: key("1"), Wait: int64(time.Minute)}); code != http.StatusTooManyRequests {
		t.Errorf("a waiter beyond the bound: status %d, want 429", code)
	}
	release(t, url, buildA, key("1"), true)
	answer(t, w)
}

// The client: a claim held by another build is waited for; the token goes
// with every request; Close releases what is still held.
func TestClient(t *testing.T) {
	s := NewServer(ServerOptions{Holder: func(string) (string, string) { return "alice", "lxplus7" }})
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()
	var warnings []string
	warn := func(m string) { warnings = append(warnings, m) }
	a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}, Mnemonic: "Task"}
	c1 := NewClient(srv.URL, nil, "s3cret", buildA, warn)
	c2 := NewClient(srv.URL, nil, "s3cret", buildB, warn)
	defer c2.Close()
	k := key("sel")
	run, rel1, err := c1.Claim(context.Background(), a, k, func(string) { t.Error("the first claim waited") })
	if !run || err != nil {
		t.Fatalf("first claim: %v %v", run, err)
	}
	type res struct {
		run     bool
		release func(bool)
		err     error
	}
	ch := make(chan res, 1)
	held := make(chan string, 1)
	go func() {
		run, release, err := c2.Claim(context.Background(), a, k, func(h string) { held <- h })
		ch <- res{run, release, err}
	}()
	select {
	case h := <-held:
		if h != "alice@lxplus7" {
			t.Errorf("waiting for %q", h)
		}
	case <-time.After(hang):
		t.Fatal("the second claim did not say it waits")
	}
	rel1(true)
	rel1(false) // a second release changes nothing
	r := <-ch
	if r.run || r.err != nil {
		t.Errorf("after the release: run %v, err %v; want to look in the cache", r.run, r.err)
	}
	// Close releases a claim still held.
	if run, _, _ := c1.Claim(context.Background(), a, key("other"), nil); !run {
		t.Fatal("claim of another key")
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if run, _, _ := c2.Claim(context.Background(), a, key("other"), func(string) { t.Error("waited for a closed build") }); !run {
		t.Error("the closed build's claim was not released")
	}
	mu.Lock()
	for _, h := range auth {
		if h != "Bearer s3cret" {
			t.Errorf("request with Authorization %q", h)
		}
	}
	mu.Unlock()
	if len(warnings) > 0 {
		t.Errorf("warnings: %q", warnings)
	}
	for _, w := range warnings {
		if strings.Contains(w, "s3cret") {
			t.Errorf("a warning shows the token: %q", w)
		}
	}
}

// The client renews what it holds, in one request per round.
func TestClientRenews(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, url := start(t, ServerOptions{Now: clock.Now})
	c := NewClient(url, nil, "", buildA, nil)
	defer c.Close()
	a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}}
	for _, k := range []string{key("1"), key("2")} {
		if run, _, _ := c.Claim(context.Background(), a, k, nil); !run {
			t.Fatal("not granted")
		}
	}
	clock.advance(20 * time.Second)
	c.renew()
	clock.advance(20 * time.Second)
	for _, k := range []string{key("1"), key("2")} {
		if cr := claimKey(t, url, buildB, k, 0); cr.State != api.ClaimHeld {
			t.Errorf("after the renewal: %+v, want held", cr)
		}
	}
}

// A wait ends with its context, at once.
func TestClientCancel(t *testing.T) {
	_, url := start(t, ServerOptions{})
	claimKey(t, url, buildA, key("sel"), 0)
	c := NewClient(url, nil, "", buildB, nil)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}}
	_, _, err := c.Claim(ctx, a, key("sel"), func(string) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want the cancellation", err)
	}
}

// A server at its limits grants that claim locally; the client stays on.
// One that answers nonsense turns it off, with one warning.
func TestClientBusyAndBroken(t *testing.T) {
	a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}}
	_, url := start(t, ServerOptions{MaxClaimsPerBuild: 1})
	var warnings []string
	c := NewClient(url, nil, "", buildA, func(m string) { warnings = append(warnings, m) })
	defer c.Close()
	for i := range 3 {
		if run, _, err := c.Claim(context.Background(), a, key(fmt.Sprint(i)), nil); !run || err != nil {
			t.Errorf("claim %d: %v %v", i, run, err)
		}
	}
	if len(warnings) != 1 || c.off.Load() {
		t.Errorf("busy server: warnings %q, off %v; want one warning, still on", warnings, c.off.Load())
	}
	if cr := claimKey(t, url, buildB, key("0"), 0); cr.State != api.ClaimHeld {
		t.Errorf("the first claim did not reach the server: %+v", cr)
	}

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "internal error", http.StatusInternalServerError)
	}))
	defer broken.Close()
	warnings = nil
	c2 := NewClient(broken.URL, nil, "", buildA, func(m string) { warnings = append(warnings, m) })
	defer c2.Close()
	for i := range 3 {
		if run, _, err := c2.Claim(context.Background(), a, key(fmt.Sprint(i)), nil); !run || err != nil {
			t.Errorf("claim %d: %v %v", i, run, err)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "500") {
		t.Errorf("broken server: warnings %q, want one", warnings)
	}
}

// Close ends the long polls, so that the server around it can stop.
func TestCloseEndsWaits(t *testing.T) {
	s, url := start(t, ServerOptions{})
	claimKey(t, url, buildA, key("sel"), 0)
	w := make(chan int, 1)
	go func() {
		code, _ := post(t, url, api.PathClaim, api.ClaimRequest{Build: buildB, Key: key("sel"), Wait: int64(time.Minute)})
		w <- code
	}()
	waitWaiters(t, s, 1)
	s.Close()
	select {
	case code := <-w:
		if code != http.StatusServiceUnavailable {
			t.Errorf("the waiting claim after Close: status %d, want 503", code)
		}
	case <-time.After(hang):
		t.Fatal("Close did not end the wait")
	}
	if code, _ := post(t, url, api.PathClaim, api.ClaimRequest{Build: buildC, Key: key("sel"), Wait: int64(time.Minute)}); code != http.StatusServiceUnavailable {
		t.Errorf("a claim that would wait after Close: status %d, want 503", code)
	}
}

// BenchmarkClaimRelease is what the coordinator costs an action that
// missed the cache: a claim and a release over loopback.
func BenchmarkClaimRelease(b *testing.B) {
	srv := httptest.NewServer(NewServer(ServerOptions{}))
	defer srv.Close()
	c := NewClient(srv.URL, nil, "", buildA, func(m string) { b.Error(m) })
	defer c.Close()
	a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}}
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = key(fmt.Sprint(i))
	}
	b.ResetTimer()
	for i := range b.N {
		run, release, err := c.Claim(context.Background(), a, keys[i], nil)
		if !run || err != nil {
			b.Fatal(run, err)
		}
		release(true)
	}
}

// A server that answers "held" at once, again and again (broken, or
// lying), is asked at most about once a second: the wait neither spins
// nor floods it, and ends with the build's context.
func TestClientPacesHeldAnswers(t *testing.T) {
	var n sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Lock()
		requests++
		n.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"state":"held","holder":{"build":%q}}`, buildB)
	}))
	defer srv.Close()
	c := NewClient(srv.URL, nil, "", buildA, nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}}
	if _, _, err := c.Claim(ctx, a, key("sel"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("claim: %v, want the context's deadline", err)
	}
	n.Lock()
	defer n.Unlock()
	if requests > 6 {
		t.Errorf("%d claim requests in 2 s to a server that answers held at once, want a few", requests)
	}
}

// A redirect is not followed: it would carry the claim, and the token to
// another port of the same host, elsewhere. The claim is granted locally.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	var mu sync.Mutex
	var got []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"state":"granted"}`)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	for _, hc := range []*http.Client{nil, {}} {
		var warnings []string
		c := NewClient(srv.URL, hc, "s3cret", buildA, func(m string) { warnings = append(warnings, m) })
		a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}}
		if run, _, err := c.Claim(context.Background(), a, key("sel"), nil); !run || err != nil {
			t.Errorf("claim: %v %v, want granted locally", run, err)
		}
		c.Close()
		if len(warnings) != 1 || strings.Contains(warnings[0], "s3cret") {
			t.Errorf("warnings %q, want one without the token", warnings)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 0 {
		t.Errorf("the redirect was followed: %q", got)
	}
}

// A claim waits for Ready (the server has the build), and for no more
// than the build's context.
func TestClientWaitsUntilReady(t *testing.T) {
	s, url := start(t, ServerOptions{Running: func(string) bool { return true }})
	ready := make(chan struct{})
	c := NewClient(url, nil, "", buildA, nil)
	c.Ready = ready
	defer c.Close()
	a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := c.Claim(ctx, a, key("sel"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("claim before ready: %v, want the context's deadline", err)
	}
	if n := s.Claims(); n != 0 {
		t.Errorf("%d claims reached the server before ready", n)
	}
	close(ready)
	if run, _, err := c.Claim(context.Background(), a, key("sel"), nil); !run || err != nil || s.Claims() != 1 {
		t.Errorf("claim once ready: %v %v, %d claims on the server", run, err, s.Claims())
	}
}

// A server that does not have the build refuses its claims: the client
// goes on without it, with one warning.
func TestClientOfAnUnknownBuild(t *testing.T) {
	_, url := start(t, ServerOptions{Running: func(b string) bool { return b == buildB }})
	var warnings []string
	c := NewClient(url, nil, "", buildA, func(m string) { warnings = append(warnings, m) })
	defer c.Close()
	a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}}
	for i := range 3 {
		if run, _, err := c.Claim(context.Background(), a, key(fmt.Sprint(i)), nil); !run || err != nil {
			t.Errorf("claim %d: %v %v, want granted locally", i, run, err)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "404") {
		t.Errorf("warnings %q, want one about the refusal", warnings)
	}
}

// A server that takes seconds to answer each claim that need not wait
// would add them to every action: the first such answer still counts,
// then the client goes on without the server, with one warning.
func TestClientLeavesASlowServer(t *testing.T) {
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"state":"granted","lease":30000000000}`)
	}))
	defer srv.Close()
	var warnings []string
	c := NewClient(srv.URL, nil, "", buildA, func(m string) { warnings = append(warnings, m) })
	c.slow = 100 * time.Millisecond
	defer c.Close()
	a := &exec.Action{Owner: graph.Label{Pkg: "pkg", Name: "sel"}}
	t0 := time.Now()
	for i := range 5 {
		if run, release, err := c.Claim(context.Background(), a, key(fmt.Sprint(i)), nil); !run || err != nil {
			t.Errorf("claim %d: %v %v", i, run, err)
		} else {
			release(true)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 1 || time.Since(t0) > time.Second {
		t.Errorf("%d requests, %s for 5 claims to a server that takes 300 ms each, want 1 request", requests, time.Since(t0))
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "took") {
		t.Errorf("warnings %q, want one about the slow server", warnings)
	}
}
