package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/exec/notify"
	"github.com/hepbuild/hepbuild/exec/notify/notifytest"
)

// TestSecretNeverPrinted: webhook URLs and bot tokens are credentials. For
// every kind, nothing a person or a log can see (String, every fmt verb,
// JSON, the errors of every way a request fails, a panic in the middle of a
// request) contains the URL's path, query or token.
func TestSecretNeverPrinted(t *testing.T) {
	defer notify.SetDefaultTimeout(200 * time.Millisecond)()
	for _, kind := range notify.Kinds {
		t.Run(kind, func(t *testing.T) {
			n := mustParse(t, specFor(kind, "http://127.0.0.1:1"))
			js, _ := json.Marshal(n)
			for what, s := range map[string]string{
				"String": n.String(),
				"%v":     fmt.Sprintf("%v", n),
				"%+v":    fmt.Sprintf("%+v", n),
				"%#v":    fmt.Sprintf("%#v", n),
				"%s":     fmt.Sprintf("%s", n),
				"%q":     fmt.Sprintf("%q", n),
				"JSON":   string(js),
			} {
				checkNoSecret(t, what, s)
			}

			// A destination that quotes the request back in its error,
			// raw and escaped.
			echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, "denied %s %s %s %s", r.URL, r.URL.Path, r.URL.RawQuery, url.QueryEscape(r.URL.String()))
			}))
			defer echo.Close()
			err := mustParse(t, specFor(kind, echo.URL)).Send(context.Background(), sample)
			if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "denied") {
				t.Errorf("echoing 403: Send = %v, want the status and the answer", err)
			} else {
				checkNoSecret(t, "error of an echoed request", err.Error())
			}

			// A destination that redirects to another host, with the
			// secret path: the message must not follow.
			other := notifytest.New(t)
			redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+r.URL.String(), http.StatusTemporaryRedirect)
			}))
			defer redirect.Close()
			err = mustParse(t, specFor(kind, redirect.URL)).Send(context.Background(), sample)
			if err == nil || !strings.Contains(err.Error(), "another host") {
				t.Errorf("redirect to another host: Send = %v, want it refused", err)
			} else {
				checkNoSecret(t, "error of a redirect", err.Error())
			}
			if len(other.Requests()) != 0 {
				t.Errorf("the message followed a redirect to another host")
			}

			// A destination that never answers.
			stall := notifytest.New(t)
			stall.Stall()
			errs := notify.Send(context.Background(), []notify.Notifier{mustParse(t, specFor(kind, stall.URL))}, sample)
			if len(errs) != 1 {
				t.Errorf("stalling destination: Send = %v, want one error", errs)
			} else {
				checkNoSecret(t, "error of a timeout", errs[0].Error())
			}

			// A destination that is not there.
			gone := notifytest.New(t)
			gone.Close()
			err = mustParse(t, specFor(kind, gone.URL)).Send(context.Background(), sample)
			if err == nil {
				t.Errorf("closed server: Send succeeded")
			} else {
				checkNoSecret(t, "error of a refused connection", err.Error())
			}

			// A request cancelled by the caller.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err = mustParse(t, specFor(kind, stall.URL)).Send(ctx, sample)
			if err == nil || !strings.Contains(err.Error(), "cancelled") {
				t.Errorf("cancelled: Send = %v, want it to say cancelled", err)
			} else {
				checkNoSecret(t, "error of a cancelled request", err.Error())
			}

			// A panic whose value quotes the URL, as a request's would.
			target := notify.Target(n)
			err = notify.PanicInside(n, func() { panic(fmt.Sprintf("bad request to %s (%s)", target, url.PathEscape(target))) })
			if err == nil || !strings.Contains(err.Error(), "panic") {
				t.Errorf("panic became %v, want an error", err)
			} else {
				checkNoSecret(t, "recovered panic", err.Error())
			}
		})
	}
}

// TestRedirectSameHost: a destination may move its hook on the same host
// (a 307 keeps the method and body).
func TestRedirectSameHost(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+fmt.Sprint(len(b) > 0))
		mu.Unlock()
		if r.URL.Path != "/moved" {
			http.Redirect(w, r, "/moved", http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	if err := mustParse(t, "webhook+"+srv.URL+"/hook").Send(context.Background(), sample); err != nil {
		t.Fatal(err)
	}
	want := []string{"POST /hook true", "POST /moved true"}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("server saw %v, want %v", got, want)
	}
}
