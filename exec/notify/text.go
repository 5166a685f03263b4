package notify

import (
	"fmt"
	"html"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bounds on what a message lists: a notification is read on a phone, and
// Telegram refuses texts over 4096 characters. The build page has the rest.
const (
	maxTargets  = 10
	maxFailures = 5
	maxLine     = 300 // runes of one target or failure
)

// dialect is how one destination marks up text. Every string that comes
// from the build (labels, reasons, user names) goes through text or code,
// because a label can contain < & > * _ and a reason anything at all.
type dialect struct {
	text func(string) string // free text, escaped
	code func(string) string // a label or path, shown verbatim
	bold func(string) string // the headline
	link func(string) string // an http(s) URL, already made safe by safeLink
}

var plain = dialect{
	text: func(s string) string { return s },
	code: func(s string) string { return s },
	bold: func(s string) string { return s },
	link: func(s string) string { return s },
}

// render writes the message's text in dialect d, one fact a line.
func render(m Message, d dialect) string {
	var b strings.Builder
	line := func(s string) { b.WriteString(s); b.WriteByte('\n') }

	line(d.bold(title(m)))
	outcome := marker(m.Outcome)
	if m.ExitCode != 0 {
		outcome += ", exit code " + strconv.Itoa(m.ExitCode)
	}
	line(d.text("Outcome: " + outcome))
	if len(m.Targets) > 0 {
		var ts []string
		for i, t := range m.Targets {
			if i == maxTargets {
				break
			}
			ts = append(ts, d.code(clip(t)))
		}
		s := d.text("Targets: ") + strings.Join(ts, d.text(", "))
		if n := len(m.Targets) - maxTargets; n > 0 {
			s += d.text(fmt.Sprintf(" and %d more", n))
		}
		line(s)
	}
	line(d.text("Actions: " + counts(m.Counts)))
	line(d.text("Elapsed: " + elapsed(m.Elapsed)))
	if len(m.Failures) > 0 {
		line(d.text("Failures:"))
		shown := 0
		for _, f := range m.Failures {
			if shown == maxFailures {
				break
			}
			line(d.text("- ") + d.code(clip(f)))
			shown++
		}
		more := len(m.Failures) - shown
		if m.Counts.Failed > len(m.Failures) {
			more = m.Counts.Failed - shown
		}
		if more > 0 {
			line(d.text(fmt.Sprintf("- and %d more", more)))
		}
	}
	if who := userAtHost(m); who != "" || m.Workspace != "" {
		s := d.text("By")
		if who != "" {
			s += d.text(" ") + d.code(clip(who))
		}
		if m.Workspace != "" {
			s += d.text(" in ") + d.code(clip(m.Workspace))
		}
		line(s)
	}
	if l, ok := safeLink(m.Link); ok {
		line(d.text("Build page: ") + d.link(l))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// title is m.Title, or a headline made from the targets and the outcome.
func title(m Message) string {
	if m.Title != "" {
		return clip(oneLine(m.Title))
	}
	what := "the build"
	if len(m.Targets) > 0 {
		ts := m.Targets
		if len(ts) > 3 {
			ts = ts[:3]
		}
		what = strings.Join(ts, " ")
		if len(m.Targets) > 3 {
			what += fmt.Sprintf(" and %d more", len(m.Targets)-3)
		}
	}
	verb := map[string]string{
		OutcomeSuccess:     "succeeded",
		OutcomeFailed:      "failed",
		OutcomeInterrupted: "was interrupted",
		OutcomeError:       "could not run",
	}[m.Outcome]
	if verb == "" {
		verb = "ended: " + m.Outcome
	}
	return clip(oneLine("hepbuild: " + what + " " + verb))
}

// marker is the outcome in capitals: plain text that stands out on every
// client without relying on emoji or colour.
func marker(outcome string) string {
	switch outcome {
	case OutcomeSuccess:
		return "OK"
	case "":
		return "UNKNOWN"
	}
	return strings.ToUpper(clip(oneLine(outcome)))
}

func counts(c Counts) string {
	s := strconv.Itoa(c.Total) + " total"
	for _, p := range []struct {
		n    int
		what string
	}{{c.Executed, "executed"}, {c.Cached, "cached"}, {c.UpToDate, "up to date"}, {c.Failed, "failed"}, {c.Skipped, "skipped"}} {
		if p.n != 0 {
			s += ", " + strconv.Itoa(p.n) + " " + p.what
		}
	}
	return s
}

// elapsed rounds d to what a person wants to read: 1h2m3s, 4.2s, 350ms.
func elapsed(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func userAtHost(m Message) string {
	switch {
	case m.User != "" && m.Host != "":
		return m.User + "@" + m.Host
	case m.User != "":
		return m.User
	}
	return m.Host
}

// clip shortens s to maxLine runes.
func clip(s string) string {
	r := []rune(s)
	if len(r) <= maxLine {
		return s
	}
	return string(r[:maxLine]) + "..."
}

// oneLine keeps a headline on one line: a newline in a title would let it
// pass for the lines that follow.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// safeLink returns link when it is an absolute http(s) URL, with the
// characters that end a link in some markup (space, < > | ( ) " `)
// percent-encoded, so that a link cannot break out into the text.
func safeLink(link string) (string, bool) {
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(link); i++ {
		c := link[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("<>|()\"`\\^{}[]'", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// slackText escapes the three characters Slack's mrkdwn reserves for its
// own markup (<!channel>, <url|text>).
func slackText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

var slack = dialect{
	text: slackText,
	// Slack's code spans know no escape for a backtick: a label with one
	// shows a quote instead, rather than ending the span early.
	code: func(s string) string {
		return "`" + slackText(strings.ReplaceAll(oneLine(s), "`", "'")) + "`"
	},
	// Bold only when the headline cannot close the bold itself.
	bold: func(s string) string {
		if strings.ContainsAny(s, "*") {
			return slackText(s)
		}
		return "*" + slackText(s) + "*"
	},
	link: func(s string) string { return "<" + slackText(s) + ">" },
}

// markdownSpecial are the characters Mattermost's markdown gives a meaning
// (& starts an entity: "&lt;" would show as "<"); a backslash before each
// shows it as itself.
var markdownSpecial = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`, `(`, `\(`, `)`, `\)`,
	`#`, `\#`, `&`, `\&`, `<`, `\<`, `>`, `\>`, `~`, `\~`, `|`, `\|`, `!`, `\!`,
	// A zero-width space after @ keeps "@channel" in a label or reason
	// from notifying everyone in the channel; mentions are not markdown, so
	// a backslash would not stop them.
	`@`, "@\u200b",
)

var mattermost = dialect{
	text: markdownSpecial.Replace,
	code: markdownCode,
	bold: func(s string) string { return "**" + markdownSpecial.Replace(s) + "**" },
	link: func(s string) string { return "<" + s + ">" },
}

// markdownCode is a code span that shows s verbatim: fenced by one more
// backtick than the longest run inside it, padded when s starts or ends
// with one. Mattermost does not look for mentions inside code.
func markdownCode(s string) string {
	s = oneLine(s)
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

var telegram = dialect{
	text: html.EscapeString,
	code: func(s string) string { return "<code>" + html.EscapeString(oneLine(s)) + "</code>" },
	bold: func(s string) string { return "<b>" + html.EscapeString(s) + "</b>" },
	link: func(s string) string {
		return `<a href="` + html.EscapeString(s) + `">` + html.EscapeString(s) + "</a>"
	},
}
