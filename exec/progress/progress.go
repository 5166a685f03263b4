// Package progress shows a build's progress on a terminal: a live block
// redrawn in place on a TTY, one line per state change in CI logs, and in
// either case every failure in full and a final summary. It is an
// exec.EventSink; it never changes what the build does.
package progress

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/hepbuild/hepbuild/exec"
)

// Mode is how progress is shown.
type Mode int

const (
	// Plain writes one line per started, finished and failed action, never
	// moving the cursor: for CI logs and files.
	Plain Mode = iota
	// TTY redraws a block of running actions in place, a few times a second,
	// with failures and warnings printed above it so they stay in scrollback.
	TTY
	// None shows no progress: only failures, warnings and the final summary.
	None
)

func (m Mode) String() string {
	switch m {
	case TTY:
		return "tty"
	case None:
		return "none"
	}
	return "plain"
}

// Detect returns TTY when f is a terminal that understands cursor movement, Plain otherwise.
func Detect(f *os.File) Mode {
	if term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb" {
		return TTY
	}
	return Plain
}

// DefaultInterval is how often the TTY block is redrawn.
const DefaultInterval = 150 * time.Millisecond

// tailLines bounds how much of a failed action's output is repeated on the
// terminal; the full log is one path away.
const tailLines = 20

// maxCommand bounds how much of a failed command line is shown.
const maxCommand = 2000

// Printer shows the progress of one build. Set its exported fields before
// the first event. It is safe for concurrent use. In TTY mode it redraws
// from a goroutine started by the build_started event; Finish stops it.
type Printer struct {
	// Now is the clock (time.Now unless replaced, for tests).
	Now func() time.Time
	// Interval between redraws of the TTY block: zero means
	// DefaultInterval, negative never (tests draw with Render).
	Interval time.Duration
	// Width and Height of the terminal; zero means asking the terminal,
	// or 80 by 24 when it does not say.
	Width, Height int
	// Color marks failures and warnings with ANSI colours. New sets it in
	// TTY mode unless NO_COLOR is set.
	Color bool

	mu       sync.Mutex
	w        io.Writer
	mode     Mode
	total    int
	started  time.Time
	counts   counts
	running  map[key]*running
	drawn    int // lines of the block now on screen
	stop     chan struct{}
	stopped  chan struct{}
	finished bool
}

type counts struct {
	executed, cached, upToDate, failed, interrupted int
}

func (c counts) done() int { return c.executed + c.cached + c.upToDate + c.failed + c.interrupted }

type key struct {
	action           *exec.Action
	target, mnemonic string
}

type running struct {
	desc    string
	since   time.Time
	attempt int
	// executor, job and jobState say where an action run by a batch
	// system or remote executor is: "slurm", "5599680_3", "running".
	executor, job, jobState string
	jobReason               string // why the job waits, as the batch system says
	// waiting says whom the action waits for: another build of the group
	// runs the same key ("waiting for alice@host").
	waiting string
}

// New returns a printer writing to w (usually os.Stderr) in mode.
func New(w io.Writer, mode Mode) *Printer {
	_, noColor := os.LookupEnv("NO_COLOR")
	return &Printer{w: w, mode: mode, Color: mode == TTY && !noColor, running: map[key]*running{}}
}

func (p *Printer) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Event updates the display with e.
func (p *Printer) Event(e exec.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	k := key{action: e.Action}
	if e.Action == nil {
		k = key{target: e.Target, mnemonic: e.Mnemonic}
	}
	var above []string // lines to print above the block (TTY) or as they come
	switch e.Type {
	case exec.EventBuildStarted:
		p.total = e.Total
		p.started = p.now()
		if p.mode == TTY {
			p.startTicker()
		}
	case exec.EventActionStarted:
		// Plain mode prints no "started" line: most started actions turn
		// out up to date or cached, and a null build would print one line
		// per action. An action's line comes when it ends.
		p.running[k] = &running{desc: describe(e), since: p.now(), attempt: e.Attempt}
	case exec.EventActionCached:
		delete(p.running, k)
		p.counts.cached++
	case exec.EventActionUpToDate:
		delete(p.running, k)
		p.counts.upToDate++
	case exec.EventActionFinished:
		where := ""
		if r := p.running[k]; r != nil && r.job != "" {
			where = " on " + r.executor + " job " + r.job
		}
		delete(p.running, k)
		p.counts.executed++
		if p.mode == Plain {
			above = append(above, p.line("ran", describe(e)+where+" ("+Duration(e.Duration)+attemptNote(e.Attempt)+")"))
		}
	case exec.EventActionWaiting:
		r := p.running[k]
		if r == nil {
			return
		}
		r.waiting = e.Message
		if r.waiting == "" {
			r.waiting = "waiting for another build"
		}
		if p.mode != Plain {
			return
		}
		above = append(above, p.line("waiting", r.desc+" "+strings.TrimPrefix(r.waiting, "waiting ")))
	case exec.EventJobQueued, exec.EventJobSubmitted, exec.EventJobRunning, exec.EventJobFinished:
		if r := p.running[k]; r != nil {
			r.executor, r.jobState, r.jobReason = e.Executor, e.JobState, e.JobReason
			if e.JobID != "" {
				r.job = e.JobID
			}
		}
		return
	case exec.EventActionFailed:
		delete(p.running, k)
		p.counts.failed++
		above = append(above, p.failure(e)...)
	case exec.EventActionRetry:
		delete(p.running, k)
		above = append(above, p.paint(yellow, "RETRY:")+fmt.Sprintf(" %s: %s; attempt %d in %s", describe(e), e.Message, e.Attempt, Duration(e.Duration)))
	case exec.EventActionInterrupted:
		delete(p.running, k)
		p.counts.interrupted++
		if p.mode == Plain {
			above = append(above, p.line("stopped", describe(e)))
		}
	case exec.EventWarning:
		msg := e.Message
		if e.Target != "" {
			msg = e.Target + ": " + msg
		}
		above = append(above, p.paint(yellow, "WARNING:")+" "+msg)
	default:
		return
	}
	if len(above) > 0 || e.Type == exec.EventBuildStarted {
		p.print(above)
	}
}

// line is a Plain progress line: "[done/total] verb what".
func (p *Printer) line(verb, what string) string {
	return fmt.Sprintf("[%d/%d] %-8s %s", p.counts.done(), p.total, verb, what)
}

func attemptNote(attempt int) string {
	if attempt > 1 {
		return fmt.Sprintf(" (attempt %d)", attempt)
	}
	return ""
}

// describe names the action of e: the scheduler puts its description in
// the message of started and finished events, saving a concatenation.
func describe(e exec.Event) string {
	if e.Message != "" && (e.Type == exec.EventActionStarted || e.Type == exec.EventActionFinished) {
		return e.Message
	}
	if e.Action != nil {
		return e.Action.Describe()
	}
	return strings.TrimSpace(e.Mnemonic + " " + e.Target)
}

// failure is what a failed action prints: where and why, the command, the
// last lines of its output, and where the rest is.
func (p *Printer) failure(e exec.Event) []string {
	ae := e.Err
	if ae == nil || ae.Action == nil {
		// Not the action's fault: the message says what went wrong.
		return []string{p.paint(red, "ERROR:") + " " + strings.TrimSpace(e.Target+": "+e.Mnemonic+": "+e.Message)}
	}
	a := ae.Action
	head := a.Owner.String() + ": " + a.Mnemonic + " failed: " + ae.Reason
	if pos := a.Pos.String(); pos != "" {
		head = pos + ": " + head
	}
	lines := []string{p.paint(red, "ERROR:") + " " + head}
	if ae.Command != "" {
		cmd := ae.Command
		if len(cmd) > maxCommand {
			cmd = cmd[:maxCommand] + " …"
		}
		lines = append(lines, "  command: "+strings.ReplaceAll(cmd, "\n", "\n    "))
	}
	if tail := strings.TrimRight(ae.Tail, "\n"); tail != "" {
		out := strings.Split(tail, "\n")
		if len(out) > tailLines {
			out = out[len(out)-tailLines:]
		}
		lines = append(lines, "  output (last lines):")
		for _, l := range out {
			lines = append(lines, "  | "+l)
		}
	}
	if ae.Log != "" {
		lines = append(lines, "  full log: "+ae.Log)
	} else if ae.Command != "" {
		lines = append(lines, "  (the command printed nothing)")
	}
	return lines
}

// print writes lines and, on a TTY, redraws the block below them.
//
// On a TTY the new text overwrites the old block in place: back to the
// block's first line, every line written and cleared to its end, and only
// then the rest of the screen cleared. Clearing first would blink, and a
// clear from the top left corner makes some terminals (tmux) save the whole
// screen to the scrollback on every redraw.
func (p *Printer) print(lines []string) {
	var b strings.Builder
	if p.mode != TTY {
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		io.WriteString(p.w, b.String())
		return
	}
	p.home(&b)
	for _, l := range lines {
		writeLine(&b, l)
	}
	block := p.block()
	for _, l := range block {
		writeLine(&b, l)
	}
	b.WriteString("\x1b[J")
	p.drawn = len(block)
	io.WriteString(p.w, b.String())
}

// home moves the cursor to the first line of the block.
func (p *Printer) home(b *strings.Builder) {
	if p.drawn > 0 {
		fmt.Fprintf(b, "\r\x1b[%dA", p.drawn)
		p.drawn = 0
	}
}

// writeLine writes l, clearing what an earlier block left on each row.
func writeLine(b *strings.Builder, l string) {
	for row := range strings.SplitSeq(l, "\n") {
		b.WriteString(row)
		b.WriteString("\x1b[K\n")
	}
}

// Render redraws the TTY block now; the ticker calls it, tests may too.
func (p *Printer) Render() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode != TTY || p.finished {
		return
	}
	p.print(nil)
}

// block is the live display: one status line, then one line per running
// action, longest running first, each cut to the terminal's width.
func (p *Printer) block() []string {
	width, height := p.size()
	now := p.now()
	c := p.counts
	status := fmt.Sprintf("[%d/%d] %d executed, %d cached", c.done(), p.total, c.executed, c.cached)
	if c.upToDate > 0 {
		status += fmt.Sprintf(", %d up to date", c.upToDate)
	}
	if c.failed > 0 {
		status += fmt.Sprintf(", %d failed", c.failed)
	}
	if n := p.waiting(); n > 0 {
		status += fmt.Sprintf(", %d waiting for other builds", n)
	}
	if !p.started.IsZero() {
		status += " · " + Duration(now.Sub(p.started))
	}
	status += p.jobCounts()
	lines := []string{p.paint(bold, truncate(status, width-1))}

	rs := make([]*running, 0, len(p.running))
	for _, r := range p.running {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].since.Equal(rs[j].since) {
			return rs[i].since.Before(rs[j].since)
		}
		return rs[i].desc < rs[j].desc
	})
	room := max(height-3, 3) // keep the block on one screen
	more := 0
	if len(rs) > room {
		rs, more = rs[:room-1], len(rs)-room+1
	}
	for _, r := range rs {
		l := fmt.Sprintf("  %6s  %s%s", Duration(now.Sub(r.since)), r.desc, attemptNote(r.attempt))
		if r.waiting != "" {
			l += "  [" + r.waiting + "]"
		} else if r.executor != "" {
			state := r.jobState
			if exec.JobState(state) == exec.JobSubmitted {
				state = "pending" // in the batch system's queue, as the status line counts it
				if r.jobReason != "" {
					state += ": " + r.jobReason
				}
			}
			l += "  [" + strings.Join(strings.Fields(r.executor+" "+r.job+" "+state), " ") + "]"
		}
		lines = append(lines, truncate(l, width-1))
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("  … and %d more", more))
	}
	return lines
}

// waiting counts the actions that wait for another build.
func (p *Printer) waiting() int {
	n := 0
	for _, r := range p.running {
		if r.waiting != "" {
			n++
		}
	}
	return n
}

// jobCounts says, per executor, how many actions wait to be submitted,
// are pending in the batch system and run there: " · slurm: 3 queued,
// 120 pending, 16 running".
func (p *Printer) jobCounts() string {
	type c struct{ queued, pending, running int }
	per := map[string]*c{}
	for _, r := range p.running {
		if r.executor == "" {
			continue
		}
		n := per[r.executor]
		if n == nil {
			n = &c{}
			per[r.executor] = n
		}
		switch exec.JobState(r.jobState) {
		case exec.JobQueued:
			n.queued++
		case exec.JobSubmitted:
			n.pending++
		case exec.JobRunning:
			n.running++
		}
	}
	names := make([]string, 0, len(per))
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		v := per[n]
		fmt.Fprintf(&b, " · %s: %d queued, %d pending, %d running", n, v.queued, v.pending, v.running)
	}
	return b.String()
}

func (p *Printer) size() (width, height int) {
	width, height = p.Width, p.Height
	if width <= 0 || height <= 0 {
		if f, ok := p.w.(*os.File); ok {
			if w, h, err := term.GetSize(int(f.Fd())); err == nil {
				width, height = orDefault(width, w), orDefault(height, h)
			}
		}
	}
	return orDefault(width, 80), orDefault(height, 24)
}

// orDefault returns a when it is set, else b.
func orDefault(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

// truncate cuts s to n runes, ending with an ellipsis when cut, so that no
// line of the block wraps and throws off the count of lines to redraw.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}

func (p *Printer) startTicker() {
	if p.stop != nil || p.Interval < 0 {
		return
	}
	interval := p.Interval
	if interval == 0 {
		interval = DefaultInterval
	}
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	go func(stop, stopped chan struct{}) {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.Render()
			case <-stop:
				return
			}
		}
	}(p.stop, p.stopped)
}

// Finish stops the live display, erases the block and prints the summary of
// s (nothing for a nil s). Later events are ignored.
func (p *Printer) Finish(s *exec.Summary) {
	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		return
	}
	p.finished = true // from here on, Event and Render do nothing
	stop, stopped := p.stop, p.stopped
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped // the ticker may wait for the lock in Render: wait outside it
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	switch {
	case p.mode == TTY:
		p.home(&b)
		if s != nil {
			writeLine(&b, Summary(s))
		}
		b.WriteString("\x1b[J")
	case s != nil:
		b.WriteString(Summary(s) + "\n")
	}
	io.WriteString(p.w, b.String())
}

// Summary is the one line that ends a build, e.g.
// "hepbuild: 1234 actions: 1000 executed, 230 cached, 4 up to date, 0 failed; critical path 12.3s (5 actions); elapsed 45.6s".
func Summary(s *exec.Summary) string {
	if s.Total == 0 {
		return "hepbuild: nothing to do: no actions"
	}
	if s.UpToDate == s.Total {
		return fmt.Sprintf("hepbuild: nothing to do: all %s up to date; elapsed %s", plural(s.Total, "action"), Duration(s.Elapsed))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hepbuild: %s: %d executed, %d cached, %d up to date, %d failed",
		plural(s.Total, "action"), s.Executed, s.Cached, s.UpToDate, s.Failed)
	if s.Skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped", s.Skipped)
	}
	if len(s.CriticalPath) > 0 {
		fmt.Fprintf(&b, "; critical path %s (%s)", Duration(s.CriticalTime), plural(len(s.CriticalPath), "action"))
	}
	fmt.Fprintf(&b, "; elapsed %s", Duration(s.Elapsed))
	if s.CommandCPU > 0 {
		fmt.Fprintf(&b, "; commands' CPU %s", Duration(s.CommandCPU))
	}
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Duration formats d short and to a useful precision: 0.4s, 12.3s, 2m03s, 1h02m.
func Duration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute-50*time.Millisecond: // not "60.0s"
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour-500*time.Millisecond:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

const (
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	bold   = "\x1b[1m"
)

func (p *Printer) paint(color, s string) string {
	if !p.Color {
		return s
	}
	return color + s + "\x1b[0m"
}
