package web

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// funcs are the templates' helpers. build.js formats the same way, so that
// a value looks the same before and after the page updates itself.
var funcs = template.FuncMap{
	"dur":        formatDuration,
	"since":      func(t, now time.Time) string { return formatDuration(int64(now.Sub(t))) },
	"ago":        ago,
	"utc":        formatTime,
	"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"num":        formatNum,
	"short":      shortID,
	"state":      stateClass,
	"stateText":  stateText,
	"outcome":    outcomeText,
	"segments":   segments,
	"done":       doneCount,
	"join":       strings.Join,
	"env":        sortedEnv,
	"steps":      stepBars,
	"jobsBy":     jobsByExecutor,
	"lines":      func(s string) int { return strings.Count(s, "\n") + 1 },
	"itoa":       func(n int32) string { return strconv.Itoa(int(n)) },
	"actionURL":  func(build string, n int32) string { return "/builds/" + build + "/actions/" + strconv.Itoa(int(n)) },
	"listURL":    listURL,
	"isRunning":  func(outcome string) bool { return outcome == api.OutcomeRunning },
	"hasCounts":  func(c api.Counts) bool { return c.Total > 0 },
	"countItems": countItems,
	"int":        func(n int64) int { return int(n) },
	"sub":        func(a, b int) int { return a - b },
	"pct":        percent,
	"contains":   strings.Contains,
	"unfinished": func(s string) bool { c := stateClass(s); return c == "pending" || c == "running" || c == "waiting" },
}

// formatDuration prints a duration the way people read build times:
// "340ms", "12.3s", "3m 04s", "1h 02m".
func formatDuration(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return strconv.Itoa(int(d/time.Millisecond)) + "ms"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", math.Floor(d.Seconds()*10)/10) // as build.js: never ahead
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		return fmt.Sprintf("%dh %02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 24*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	case d < 14*24*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
	}
	return t.UTC().Format("2 Jan 2006")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// formatNum groups digits by thousands: 1,000,000 actions stay readable.
func formatNum(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// stateClass maps the states of the read model (graph states, outcomes,
// and the event types an action's state is named by) to the few the pages
// colour: failed red, running blue, waiting purple, executed/cached/
// uptodate shades of green, pending grey, skipped light grey.
func stateClass(s string) string {
	switch s {
	case "failed", "action_failed", api.OutcomeError, api.OutcomeLost:
		return "failed"
	case "interrupted", "action_interrupted":
		return "interrupted"
	case "running", "action_started", "action_retry":
		return "running"
	case "waiting", "action_waiting":
		return "waiting"
	case "done", "action_finished", "executed", api.OutcomeSuccess:
		return "done"
	case "cached", "action_cached":
		return "cached"
	case "uptodate", "action_uptodate":
		return "uptodate"
	case "skipped":
		return "skipped"
	}
	return "pending"
}

// stateText names a state for people.
func stateText(s string) string {
	switch s {
	case "action_failed":
		return "failed"
	case "action_interrupted":
		return "interrupted"
	case "action_started":
		return "running"
	case "action_retry":
		return "retrying"
	case "action_waiting":
		return "waiting"
	case "action_finished":
		return "executed"
	case "action_cached":
		return "cached"
	case "action_uptodate":
		return "up to date"
	case "action_queued":
		return "queued"
	case "":
		return "pending"
	}
	return s
}

func outcomeText(s string) string {
	switch s {
	case api.OutcomeSuccess:
		return "succeeded"
	case api.OutcomeRunning:
		return "running"
	case "":
		return "unknown"
	}
	return s
}

// segment is one part of a progress bar, in thousandths of its width
// (drawn as SVG rectangles: the policy forbids style attributes).
type segment struct {
	Class string
	Label string
	N     int
	X, W  float64
}

// segmentOrder is the order of a progress bar's parts, left to right:
// finished work first, failures where the eye lands.
var segmentOrder = []string{"failed", "done", "cached", "uptodate", "skipped", "running", "waiting"}

func segments(c api.Counts) []segment {
	n := map[string]int{"failed": c.Failed, "done": c.Executed, "cached": c.Cached, "uptodate": c.UpToDate,
		"skipped": c.Skipped, "running": c.Running, "waiting": c.Waiting}
	total := c.Total
	sum := 0
	for _, k := range segmentOrder {
		sum += n[k]
	}
	if sum > total {
		total = sum
	}
	var out []segment
	x := 0.0
	for _, k := range segmentOrder {
		if n[k] == 0 || total == 0 {
			continue
		}
		w := 1000 * float64(n[k]) / float64(total)
		out = append(out, segment{Class: k, Label: k, N: n[k], X: x, W: w})
		x += w
	}
	return out
}

func doneCount(c api.Counts) int {
	return c.Executed + c.Cached + c.UpToDate + c.Failed + c.Skipped
}

// countItem is one count of a build's legend.
type countItem struct {
	Class, Label string
	N            int
}

func countItems(c api.Counts) []countItem {
	pending := c.Total - doneCount(c) - c.Running - c.Waiting
	if pending < 0 {
		pending = 0
	}
	return []countItem{
		{"failed", "failed", c.Failed},
		{"running", "running", c.Running},
		{"waiting", "waiting", c.Waiting},
		{"done", "executed", c.Executed},
		{"cached", "cached", c.Cached},
		{"uptodate", "up to date", c.UpToDate},
		{"skipped", "skipped", c.Skipped},
		{"pending", "pending", pending},
	}
}

type envVar struct{ Name, Value string }

func sortedEnv(m map[string]string) []envVar {
	out := make([]envVar, 0, len(m))
	for k, v := range m {
		out = append(out, envVar{k, v})
	}
	slices.SortFunc(out, func(a, b envVar) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// stepBar is one step of the critical path with its share of the longest.
type stepBar struct {
	api.Step
	W float64 // of 1000
}

func stepBars(steps []api.Step) []stepBar {
	var longest int64
	for _, s := range steps {
		longest = max(longest, s.Duration)
	}
	out := make([]stepBar, len(steps))
	for i, s := range steps {
		out[i].Step = s
		if longest > 0 {
			out[i].W = max(2, 1000*float64(s.Duration)/float64(longest))
		}
	}
	return out
}

// executorJobs is the job counts of one batch system.
type executorJobs struct {
	Executor string
	States   []api.JobCount
	Total    int
}

func jobsByExecutor(counts []api.JobCount) []executorJobs {
	var out []executorJobs
	for _, c := range counts {
		i := slices.IndexFunc(out, func(e executorJobs) bool { return e.Executor == c.Executor })
		if i < 0 {
			out = append(out, executorJobs{Executor: c.Executor})
			i = len(out) - 1
		}
		out[i].States = append(out[i].States, c)
		out[i].Total += c.Count
	}
	return out
}

func listURL(user, target string) string {
	var parts []string
	if user != "" {
		parts = append(parts, "user="+url.QueryEscape(user))
	}
	if target != "" {
		parts = append(parts, "target="+url.QueryEscape(target))
	}
	if len(parts) == 0 {
		return "/"
	}
	return "/?" + strings.Join(parts, "&")
}

// percent is part of total, rounded down so that 100% means all.
func percent(part, total int) string {
	if total <= 0 {
		return "0%"
	}
	return strconv.Itoa(part*100/total) + "%"
}
