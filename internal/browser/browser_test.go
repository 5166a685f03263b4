package browser

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestBrowser checks the driver on a page whose script changes it, and that
// a script error reaches ConsoleErrors.
func TestBrowser(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(`<!doctype html><title>t</title><p id="a">before</p><script src="/s.js"></script>`))
		case "/s.js":
			w.Header().Set("Content-Type", "text/javascript")
			w.Write([]byte(`setTimeout(() => { document.getElementById("a").textContent = "after <b>"; }, 100);`))
		case "/bad":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(`<!doctype html><title>t</title><script src="/bad.js"></script>`))
		case "/bad.js":
			w.Header().Set("Content-Type", "text/javascript")
			w.Write([]byte(`throw new Error("broken on purpose");`))
		}
	}))
	defer srv.Close()
	if !Available() {
		t.Skipf("%s is not installed", ExecPath)
	}
	b, err := Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Navigate(srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("#a", "after"); err != nil {
		t.Fatal(err)
	}
	got, err := b.Text("#a")
	if err != nil || got != "after <b>" {
		t.Errorf("Text(#a) = %q, %v; want %q", got, err, "after <b>")
	}
	if h, err := b.HTML("#a"); err != nil || !strings.Contains(h, "after &lt;b&gt;") {
		t.Errorf("HTML(#a) = %q, %v", h, err)
	}
	if n, err := b.Count("p"); err != nil || n != 1 {
		t.Errorf("Count(p) = %d, %v; want 1", n, err)
	}
	if _, err := b.Text("#missing"); err == nil {
		t.Error("Text(#missing) gave no error")
	}
	path := SaveScreenshot(t, b, "browser")
	if png, err := os.ReadFile(path); err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf("screenshot %s is not a PNG: %v", path, err)
	}
	if errs := b.ConsoleErrors(); len(errs) != 0 {
		t.Errorf("console errors on a clean page: %q", errs)
	}
	if err := b.Navigate(srv.URL + "/bad"); err != nil {
		t.Fatal(err)
	}
	if err := b.Eval(`new Promise(r => setTimeout(r, 200))`, nil); err != nil {
		t.Fatal(err)
	}
	if errs := b.ConsoleErrors(); len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), "broken on purpose") {
		t.Errorf("ConsoleErrors() = %q, want the thrown error", errs)
	}
}
