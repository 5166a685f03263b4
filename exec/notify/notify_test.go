package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/notify"
	"github.com/hepbuild/hepbuild/exec/notify/notifytest"
	"github.com/hepbuild/hepbuild/graph"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from what the destinations received")

// sample is an ordinary failed build.
var sample = notify.Message{
	Title:    "hepbuild: //ana:datacards failed",
	Targets:  []string{"//ana:datacards", "//ana:plots"},
	Outcome:  notify.OutcomeFailed,
	ExitCode: 1,
	Counts:   notify.Counts{Total: 20165, Executed: 120, Cached: 20000, UpToDate: 40, Failed: 2, Skipped: 3},
	Elapsed:  83*time.Minute + 12*time.Second + 400*time.Millisecond,
	User:     "alice", Host: "lxplus7", Workspace: "/home/alice/tth",
	Link: "http://127.0.0.1:8080/builds/0123456789abcdef0123456789abcdef",
	Failures: []string{
		"//ana:fit (Fit): exit status 1",
		"//ana:plot_2 (Plot): did not write declared output plot.pdf",
	},
}

// hostile has labels and reasons that are markup in every destination's
// dialect, a mention of the whole channel, and a link that tries to end
// itself early.
var hostile = notify.Message{
	Targets: []string{
		"@channel",
		"//ana:<script>alert(1)</script>",
		"//ana:a&b",
		"//x:`tick`*bold*_it_",
	},
	Outcome:  notify.OutcomeFailed,
	ExitCode: 1,
	Counts:   notify.Counts{Total: 4, Failed: 1, Skipped: 3},
	Elapsed:  1500 * time.Millisecond,
	User:     "<b>mallory</b>", Host: "h&h", Workspace: "/tmp/a>b",
	Link:     "http://127.0.0.1:8080/builds/x?a=<b>|c)d",
	Failures: []string{"//ana:fit (Fit): <!channel> exit status 1 & @here [x](http://evil.example)\nsecond line"},
}

// specs point each kind at a Recorder, with a secret in the path (and
// query) as the real destinations have.
func specFor(kind, base string) string {
	switch kind {
	case "slack":
		return "slack+" + base + "/services/T0SECRET1/B0SECRET2/XSECRETTOKEN3"
	case "mattermost":
		return "mattermost+" + base + "/hooks/MMSECRETHOOKID"
	case "telegram":
		return "telegram+" + base + "/bot123456:TGSECRETTOKEN/sendMessage?chat_id=-100777"
	case "webhook":
		return "webhook+" + base + "/hook/WHSECRETPATH?token=WHQUERYSECRET"
	}
	panic(kind)
}

// secrets are the parts of specFor that must never be printed.
var secrets = []string{"SECRET", "/services/", "/hooks/", "/bot", "token="}

func mustParse(t *testing.T, spec string) notify.Notifier {
	t.Helper()
	n, err := notify.Parse(spec)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return n
}

// checkNoSecret fails when s contains any part of a secret URL.
func checkNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s shows the secret %q: %s", what, sec, s)
		}
	}
}

func body(t *testing.T, r notifytest.Request) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.Body)
	}
	return m
}

// sendTo sends m to a fresh Recorder as kind and returns the one request
// it received.
func sendTo(t *testing.T, kind string, m notify.Message) notifytest.Request {
	t.Helper()
	rec := notifytest.New(t)
	if kind == "telegram" {
		rec.Answer(200, `{"ok":true,"result":{}}`)
	}
	n := mustParse(t, specFor(kind, rec.URL))
	if err := n.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := rec.Requests()
	if len(reqs) != 1 {
		t.Fatalf("destination received %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request is %s with Content-Type %q, want POST of application/json", r.Method, r.Header.Get("Content-Type"))
	}
	return r
}

// golden compares the received body, indented, with testdata/NAME.golden.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	// The same JSON, readable: the encoder's escapes of < > & are
	// equivalent to the characters.
	got = []byte(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(buf.String()))
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, d)
	}
}

func TestPayloads(t *testing.T) {
	for _, kind := range notify.Kinds {
		t.Run(kind, func(t *testing.T) {
			r := sendTo(t, kind, sample)
			golden(t, kind, r.Body)
			if kind == "telegram" && r.Path != "/bot123456:TGSECRETTOKEN/sendMessage" {
				t.Errorf("telegram posted to %s, want the bot's sendMessage", r.Path)
			}
		})
	}
}

func TestSlackPayload(t *testing.T) {
	b := body(t, sendTo(t, "slack", sample))
	if got, want := b["text"], "*hepbuild: //ana:datacards failed*"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	att := b["attachments"].([]any)[0].(map[string]any)
	if att["color"] != "danger" {
		t.Errorf("a failed build's colour is %v, want danger", att["color"])
	}
	text := att["text"].(string)
	for _, want := range []string{
		"Outcome: FAILED, exit code 1",
		"Targets: `//ana:datacards`, `//ana:plots`",
		"Actions: 20165 total, 120 executed, 20000 cached, 40 up to date, 2 failed, 3 skipped",
		"Elapsed: 1h23m12s",
		"- `//ana:fit (Fit): exit status 1`",
		"By `alice@lxplus7` in `/home/alice/tth`",
		"Build page: <http://127.0.0.1:8080/builds/0123456789abcdef0123456789abcdef>",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("attachment text lacks %q:\n%s", want, text)
		}
	}
}

func TestMattermostPayload(t *testing.T) {
	b := body(t, sendTo(t, "mattermost", sample))
	if b["username"] != "hepbuild" {
		t.Errorf("username = %v, want hepbuild", b["username"])
	}
	want := "**hepbuild: //ana:datacards failed**\n" +
		"Outcome: FAILED, exit code 1\n" +
		"Targets: `//ana:datacards`, `//ana:plots`\n" +
		"Actions: 20165 total, 120 executed, 20000 cached, 40 up to date, 2 failed, 3 skipped\n" +
		"Elapsed: 1h23m12s\n" +
		"Failures:\n" +
		"- `//ana:fit (Fit): exit status 1`\n" +
		"- `//ana:plot_2 (Plot): did not write declared output plot.pdf`\n" +
		"By `alice@lxplus7` in `/home/alice/tth`\n" +
		"Build page: <http://127.0.0.1:8080/builds/0123456789abcdef0123456789abcdef>"
	if d := cmp.Diff(want, b["text"]); d != "" {
		t.Errorf("text mismatch (-want +got):\n%s", d)
	}
}

func TestTelegramPayload(t *testing.T) {
	b := body(t, sendTo(t, "telegram", sample))
	if b["chat_id"] != "-100777" || b["parse_mode"] != "HTML" {
		t.Errorf("chat_id = %v, parse_mode = %v, want -100777 and HTML", b["chat_id"], b["parse_mode"])
	}
	want := "<b>hepbuild: //ana:datacards failed</b>\n" +
		"Outcome: FAILED, exit code 1\n" +
		"Targets: <code>//ana:datacards</code>, <code>//ana:plots</code>\n" +
		"Actions: 20165 total, 120 executed, 20000 cached, 40 up to date, 2 failed, 3 skipped\n" +
		"Elapsed: 1h23m12s\n" +
		"Failures:\n" +
		"- <code>//ana:fit (Fit): exit status 1</code>\n" +
		"- <code>//ana:plot_2 (Plot): did not write declared output plot.pdf</code>\n" +
		"By <code>alice@lxplus7</code> in <code>/home/alice/tth</code>\n" +
		`Build page: <a href="http://127.0.0.1:8080/builds/0123456789abcdef0123456789abcdef">http://127.0.0.1:8080/builds/0123456789abcdef0123456789abcdef</a>`
	if d := cmp.Diff(want, b["text"]); d != "" {
		t.Errorf("text mismatch (-want +got):\n%s", d)
	}
}

// TestWebhookPayload pins the generic webhook's field names: receivers
// written by others parse them, so a rename must fail here.
func TestWebhookPayload(t *testing.T) {
	b := body(t, sendTo(t, "webhook", sample))
	text := b["text"]
	delete(b, "text")
	want := map[string]any{
		"version":   1.0,
		"title":     "hepbuild: //ana:datacards failed",
		"targets":   []any{"//ana:datacards", "//ana:plots"},
		"outcome":   "failed",
		"exit_code": 1.0,
		"counts": map[string]any{"total": 20165.0, "executed": 120.0, "cached": 20000.0,
			"up_to_date": 40.0, "failed": 2.0, "skipped": 3.0},
		"elapsed_ms": 4992400.0,
		"user":       "alice",
		"host":       "lxplus7",
		"workspace":  "/home/alice/tth",
		"link":       "http://127.0.0.1:8080/builds/0123456789abcdef0123456789abcdef",
		"failures":   []any{"//ana:fit (Fit): exit status 1", "//ana:plot_2 (Plot): did not write declared output plot.pdf"},
	}
	if d := cmp.Diff(want, b); d != "" {
		t.Errorf("payload mismatch (-want +got):\n%s", d)
	}
	if s, _ := text.(string); !strings.HasPrefix(s, "hepbuild: //ana:datacards failed\nOutcome: FAILED, exit code 1\n") {
		t.Errorf("text is not the plain message: %q", text)
	}

	// An empty message still has lists, not nulls.
	b = body(t, sendTo(t, "webhook", notify.Message{Outcome: notify.OutcomeSuccess}))
	if _, ok := b["targets"].([]any); !ok {
		t.Errorf("targets of an empty message = %v, want []", b["targets"])
	}
	if b["title"] != "hepbuild: the build succeeded" {
		t.Errorf("made-up title = %q", b["title"])
	}
}

// TestHostileLabels sends labels that are markup in each dialect and checks
// that they arrive as text, not as markup, and that nobody is mentioned.
func TestHostileLabels(t *testing.T) {
	t.Run("slack", func(t *testing.T) {
		b := body(t, sendTo(t, "slack", hostile))
		text := b["text"].(string) + "\n" + b["attachments"].([]any)[0].(map[string]any)["text"].(string)
		link := "<http://127.0.0.1:8080/builds/x?a=%3Cb%3E%7Cc%29d>"
		if !strings.Contains(text, link) {
			t.Errorf("link not made safe; want %s in:\n%s", link, text)
		}
		rest := strings.Replace(text, link, "", 1)
		if strings.ContainsAny(rest, "<>") {
			t.Errorf("unescaped < or > outside the link (Slack markup, <!channel>):\n%s", rest)
		}
		for _, want := range []string{"`//ana:&lt;script&gt;alert(1)&lt;/script&gt;`", "`//ana:a&amp;b`", "`//x:'tick'*bold*_it_`", "&lt;!channel&gt;"} {
			if !strings.Contains(text, want) {
				t.Errorf("text lacks %s:\n%s", want, text)
			}
		}
		if strings.Contains(text, "second line") && !strings.Contains(text, "@here [x](http://evil.example) second line`") {
			t.Errorf("a newline in a reason broke out of its code span:\n%s", text)
		}
	})
	t.Run("telegram", func(t *testing.T) {
		text := body(t, sendTo(t, "telegram", hostile))["text"].(string)
		tags := regexp.MustCompile(`</?(b|code)>|<a href="[^"<>]*">|</a>`)
		if rest := tags.ReplaceAllString(text, ""); strings.ContainsAny(rest, "<>") {
			t.Errorf("markup besides <b>, <code> and <a>:\n%s", rest)
		}
		// What a reader sees: the labels, exactly.
		shown := html.UnescapeString(tags.ReplaceAllString(text, ""))
		for _, want := range append(hostile.Targets, "<b>mallory</b>@h&h", "/tmp/a>b") {
			if !strings.Contains(shown, want) {
				t.Errorf("reader does not see %q in:\n%s", want, shown)
			}
		}
		if strings.Contains(text, "\nsecond line") {
			t.Errorf("a newline in a reason broke its line:\n%s", text)
		}
		if !strings.Contains(text, `<a href="http://127.0.0.1:8080/builds/x?a=%3Cb%3E%7Cc%29d">`) {
			t.Errorf("link not made safe:\n%s", text)
		}
	})
	t.Run("mattermost", func(t *testing.T) {
		text := body(t, sendTo(t, "mattermost", hostile))["text"].(string)
		// Code spans show their content verbatim and are not searched
		// for mentions; outside them, every markup character is escaped.
		spans := regexp.MustCompile("``[^`].*?[^`]``|`[^`]+`")
		outside := spans.ReplaceAllString(text, "")
		head, rest, _ := strings.Cut(outside, "\n")
		if !strings.HasPrefix(head, "**") || !strings.HasSuffix(head, "**") {
			t.Errorf("headline not bold: %s", head)
		}
		outside = strings.Trim(head, "*") + "\n" + rest
		if regexp.MustCompile(`@(channel|here|all)`).MatchString(outside) {
			t.Errorf("a mention outside code spans:\n%s", outside)
		}
		if m := regexp.MustCompile(`(^|[^\\])[*_\[\]()<>&]`).FindString(strings.ReplaceAll(outside, "<http://127.0.0.1:8080/builds/x?a=%3Cb%3E%7Cc%29d>", "")); m != "" {
			t.Errorf("unescaped markdown %q outside code spans:\n%s", m, outside)
		}
		for _, want := range []string{"`//ana:<script>alert(1)</script>`", "``//x:`tick`*bold*_it_``", "`@channel`", "`<b>mallory</b>@h&h`"} {
			if !strings.Contains(text, want) {
				t.Errorf("text lacks the code span %s:\n%s", want, text)
			}
		}
	})
	t.Run("webhook", func(t *testing.T) {
		var p notify.WebhookPayload
		if err := json.Unmarshal(sendTo(t, "webhook", hostile).Body, &p); err != nil {
			t.Fatal(err)
		}
		// JSON carries the strings as they are; the receiver formats.
		if d := cmp.Diff(hostile.Targets, p.Targets); d != "" {
			t.Errorf("targets mismatch (-want +got):\n%s", d)
		}
		if p.User != hostile.User || p.Link != hostile.Link {
			t.Errorf("user %q, link %q changed on the way", p.User, p.Link)
		}
	})
}

func TestTooManyFailuresAreCut(t *testing.T) {
	m := sample
	m.Counts.Failed = 40
	m.Failures = nil
	for i := range 8 {
		m.Failures = append(m.Failures, "//ana:f"+string(rune('a'+i))+" (Fit): exit status 1")
	}
	text := body(t, sendTo(t, "telegram", m))["text"].(string)
	if !strings.Contains(text, "//ana:fe (Fit)") || strings.Contains(text, "//ana:ff (Fit)") {
		t.Errorf("want the first 5 failures only:\n%s", text)
	}
	if !strings.Contains(text, "- and 35 more") {
		t.Errorf("want the count of the failures not shown:\n%s", text)
	}
}

func TestTelegramRefusal(t *testing.T) {
	rec := notifytest.New(t)
	rec.Answer(200, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`)
	err := mustParse(t, specFor("telegram", rec.URL)).Send(context.Background(), sample)
	if err == nil || !strings.Contains(err.Error(), "chat not found") {
		t.Fatalf("Send = %v, want the bot API's refusal", err)
	}
	checkNoSecret(t, "error", err.Error())
}

func TestNon2xx(t *testing.T) {
	for _, kind := range notify.Kinds {
		t.Run(kind, func(t *testing.T) {
			rec := notifytest.New(t)
			rec.Answer(404, "no_service\n")
			err := mustParse(t, specFor(kind, rec.URL)).Send(context.Background(), sample)
			if err == nil {
				t.Fatal("Send succeeded on 404")
			}
			host := strings.TrimPrefix(rec.URL, "http://")
			for _, want := range []string{kind, host, "404", "no_service"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			checkNoSecret(t, "error", err.Error())
		})
	}
}

// TestErrorKeepsItsWords: redacting a path segment that is an ordinary
// word leaves the message's own words alone.
func TestErrorKeepsItsWords(t *testing.T) {
	rec := notifytest.New(t)
	rec.Answer(500, "notification answered badly")
	err := mustParse(t, "webhook+"+rec.URL+"/notification/answered").Send(context.Background(), sample)
	want := "webhook notification to " + strings.TrimPrefix(rec.URL, "http://") + ": answered 500 Internal Server Error: [redacted] [redacted] badly"
	if err == nil || err.Error() != want {
		t.Errorf("Send = %v, want %s", err, want)
	}
}

// TestStallingDestination: a destination that takes the request and never
// answers costs the bound, and the error says who did not answer.
func TestStallingDestination(t *testing.T) {
	defer notify.SetDefaultTimeout(200 * time.Millisecond)()
	rec := notifytest.New(t)
	rec.Stall()
	n := mustParse(t, specFor("mattermost", rec.URL))
	errs := notify.Send(context.Background(), []notify.Notifier{n}, sample)
	if len(errs) != 1 {
		t.Fatalf("Send = %v, want one error", errs)
	}
	err := errs[0]
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not a deadline", err)
	}
	if !strings.Contains(err.Error(), "mattermost") || !strings.Contains(err.Error(), strings.TrimPrefix(rec.URL, "http://")) {
		t.Errorf("error %q does not name the kind and host", err)
	}
	checkNoSecret(t, "error", err.Error())
	if len(rec.Requests()) != 1 {
		t.Errorf("the destination saw %d requests, want 1", len(rec.Requests()))
	}
}

// panicky is a foreign Notifier that fails in the worst way.
type panicky struct{}

func (panicky) Kind() string                                     { return "panicky" }
func (panicky) String() string                                   { return "panicky (nowhere)" }
func (panicky) Send(ctx context.Context, m notify.Message) error { panic("boom") }

func TestSendAll(t *testing.T) {
	a, b := notifytest.New(t), notifytest.New(t)
	ns := []notify.Notifier{
		mustParse(t, specFor("slack", a.URL)),
		panicky{},
		nil,
		mustParse(t, specFor("webhook", b.URL)),
	}
	errs := notify.Send(context.Background(), ns, sample)
	if len(errs) != 2 {
		t.Fatalf("Send = %v, want the panic and the nil notifier as errors", errs)
	}
	if !strings.Contains(errs[0].Error(), "panicky (nowhere)") || !strings.Contains(errs[0].Error(), "boom") {
		t.Errorf("panic reported as %q", errs[0])
	}
	if len(a.Requests()) != 1 || len(b.Requests()) != 1 {
		t.Errorf("destinations received %d and %d requests, want 1 each", len(a.Requests()), len(b.Requests()))
	}
	if errs := notify.Send(context.Background(), ns[:1], sample); errs != nil {
		t.Errorf("Send to a working destination = %v, want nil", errs)
	}
}

func TestCountsAndFailuresOfSummary(t *testing.T) {
	fit := &exec.Action{Owner: graph.MustParseLabel("//ana:fit"), Mnemonic: "Fit"}
	plot := &exec.Action{Owner: graph.MustParseLabel("//ana:plot"), Mnemonic: "Plot"}
	s := &exec.Summary{Total: 10, Executed: 3, Cached: 4, UpToDate: 1, Failed: 2, Skipped: 0,
		Failures: []*exec.ActionError{{Action: fit, Reason: "exit status 1"}, {Action: plot, Reason: "timed out after 1m"}}}
	if d := cmp.Diff(notify.Counts{Total: 10, Executed: 3, Cached: 4, UpToDate: 1, Failed: 2}, notify.CountsOf(s)); d != "" {
		t.Errorf("CountsOf mismatch (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"//ana:fit (Fit): exit status 1"}, notify.FailuresOf(s, 1)); d != "" {
		t.Errorf("FailuresOf mismatch (-want +got):\n%s", d)
	}
	if notify.CountsOf(nil) != (notify.Counts{}) || notify.FailuresOf(nil, 5) != nil {
		t.Error("a build that never started has counts or failures")
	}
}
