// Package browser drives a headless Chromium for tests, so that they look at
// hepbuild's pages as a person's browser renders them, JavaScript and the
// Content-Security-Policy included, and not only at the HTML the server sent.
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ExecPath is where the tests expect Chromium (Debian's package).
const ExecPath = "/usr/bin/chromium"

// Timeout bounds each step (navigate, wait, read): a page that never shows
// what a test waits for fails the test instead of hanging it.
const Timeout = 30 * time.Second

// Browser is one headless Chromium with one tab. It is not safe for
// concurrent use: a test drives it step by step.
type Browser struct {
	ctx     context.Context
	cancel  func()
	mu      sync.Mutex
	console []string // errors, exceptions and CSP violations of the pages
}

// Available reports whether Chromium is installed, so that tests can skip
// where it is not.
func Available() bool {
	_, err := os.Stat(ExecPath)
	return err == nil
}

// Start launches Chromium headless. It runs without its sandbox because
// tests run as root, where Chromium refuses its sandbox, and it resolves no
// host name but the loopback's, so that a page cannot reach the network.
// Close ends the process.
func Start(ctx context.Context) (*Browser, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ExecPath),
		chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	b := &Browser{ctx: bctx, cancel: func() { bcancel(); acancel() }}
	// Run nothing: it starts the browser and opens the tab, so that the
	// console is listened to before the first page loads.
	if err := chromedp.Do(bctx); err != nil {
		b.cancel()
		return nil, fmt.Errorf("starting %s: %w", ExecPath, err)
	}
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.console = append(b.console, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return b, nil
}

// Close ends Chromium and removes its profile folder.
func (b *Browser) Close() {
	b.cancel()
}

// ConsoleErrors returns the errors the pages wrote to the console so far:
// uncaught exceptions, failed requests, and Content-Security-Policy
// violations (an inline script or style the server's policy blocked).
func (b *Browser) ConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// TakeConsoleErrors returns the console's errors so far and forgets them,
// for a test that expects some (a 404 page logs its status).
func (b *Browser) TakeConsoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	errs := b.console
	b.console = nil
	return errs
}

func (b *Browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, Timeout)
}

// Navigate loads url and waits for its load event.
func (b *Browser) Navigate(url string) error {
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("navigating to %s: %w", url, err)
	}
	return nil
}

// WaitVisible waits until an element matching the CSS selector is shown.
func (b *Browser) WaitVisible(sel string) error {
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		return fmt.Errorf("waiting for %s: %w", sel, err)
	}
	return nil
}

// WaitText waits until the text of the first element matching the CSS
// selector contains text.
func (b *Browser) WaitText(sel, text string) error {
	ctx, cancel := b.step()
	defer cancel()
	var err error
	for {
		_, err = chromedp.Run(ctx, chromedp.PollFunction[chromedp.Void](
			`(sel, text) => { const e = document.querySelector(sel); return e !== null && e.textContent.includes(text); }`,
			chromedp.WithPollingArgs(sel, text),
			chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(Timeout)))
		// A page that navigates (a click on a link) destroys the context
		// the poll ran in: wait on in the new page.
		if err == nil || ctx.Err() != nil || !navigated(err) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		got, _ := b.Text(sel)
		return fmt.Errorf("waiting for %q in %s (it shows %q): %w", text, sel, clip(got), err)
	}
	return nil
}

// Text returns the text content of the first element matching the CSS
// selector ("" and an error when there is none).
func (b *Browser) Text(sel string) (string, error) {
	var s *string
	if err := b.Eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e === null ? null : e.textContent; })()`, jsString(sel)), &s); err != nil {
		return "", err
	}
	if s == nil {
		return "", fmt.Errorf("no element matches %s", sel)
	}
	return *s, nil
}

// HTML returns the outer HTML of the first element matching the CSS
// selector, as the page's scripts left it.
func (b *Browser) HTML(sel string) (string, error) {
	var s *string
	if err := b.Eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e === null ? null : e.outerHTML; })()`, jsString(sel)), &s); err != nil {
		return "", err
	}
	if s == nil {
		return "", fmt.Errorf("no element matches %s", sel)
	}
	return *s, nil
}

// Count returns how many elements match the CSS selector.
func (b *Browser) Count(sel string) (int, error) {
	var n int
	err := b.Eval(fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel)), &n)
	return n, err
}

// Resize sets the size of the page's window in CSS pixels (1280x900 at
// the start), for a screenshot of a wide page.
func (b *Browser) Resize(width, height int) error {
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		return fmt.Errorf("resizing the window: %w", err)
	}
	return nil
}

// Click clicks the first element matching the CSS selector.
func (b *Browser) Click(sel string) error {
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		return fmt.Errorf("clicking %s: %w", sel, err)
	}
	return nil
}

// Eval evaluates a JavaScript expression in the page, waits for it when it
// is a promise, and decodes its value (JSON) into res, a pointer, unless
// res is nil.
func (b *Browser) Eval(expr string, res any) error {
	ctx, cancel := b.step()
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return fmt.Errorf("evaluating %s: %w", clip(expr), err)
	}
	if res == nil {
		return nil
	}
	if err := json.Unmarshal(raw, res); err != nil {
		return fmt.Errorf("decoding the value of %s: %w", clip(expr), err)
	}
	return nil
}

// Screenshot saves a PNG of the whole page (beyond the window) to path.
func (b *Browser) Screenshot(path string) error {
	ctx, cancel := b.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("taking a screenshot: %w", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return fmt.Errorf("saving a screenshot: %w", err)
	}
	return nil
}

// ScreenshotDirEnv names the variable that asks tests to keep their
// screenshots in a folder, so that people can look at them.
const ScreenshotDirEnv = "HEPBUILD_SCREENSHOTS"

// SaveScreenshot saves a screenshot of the page as NAME.png in the test's
// temporary folder and, when HEPBUILD_SCREENSHOTS names a folder, there
// too. It returns the path in the temporary folder.
func SaveScreenshot(t testing.TB, b *Browser, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".png")
	if err := b.Screenshot(path); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv(ScreenshotDirEnv); dir != "" {
		png, err := os.ReadFile(path)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
		}
		if err != nil {
			t.Fatalf("keeping the screenshot %s: %v", name, err)
		}
	}
	return path
}

// ForTest starts a browser for a test, skipping the test when Chromium is
// not installed, and closes it when the test ends. It fails the test when
// a page wrote an error to the console, since a script error or a
// blocked resource is a broken page even when the checks pass.
func ForTest(t testing.TB) *Browser {
	t.Helper()
	if !Available() {
		t.Skipf("%s is not installed", ExecPath)
	}
	b, err := Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if errs := b.ConsoleErrors(); len(errs) > 0 {
			t.Errorf("the pages wrote errors to the console:\n%s", strings.Join(errs, "\n"))
		}
		b.Close()
	})
	return b
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// jsString quotes s as a JavaScript string literal (JSON's is one).
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// navigated says that err is a page's script context that went away: the
// page navigated (a click on a link, a form's submission).
func navigated(err error) bool {
	for _, m := range []string{"Cannot find context", "navigated or closed", "context was destroyed"} {
		if strings.Contains(err.Error(), m) {
			return true
		}
	}
	return false
}
