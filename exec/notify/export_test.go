package notify

import "time"

// SetDefaultTimeout shortens the bound of Send for a test; the returned
// function restores it.
func SetDefaultTimeout(d time.Duration) (restore func()) {
	old := defaultTimeout
	defaultTimeout = d
	return func() { defaultTimeout = old }
}

// PanicInside runs f inside n's own panic guard, as Send runs the request,
// and returns the error it became: the only way to see what a panic in the
// middle of a request would print.
func PanicInside(n Notifier, f func()) error {
	var e *endpoint
	switch n := n.(type) {
	case slackNotifier:
		e = n.endpoint
	case mattermostNotifier:
		e = n.endpoint
	case telegramNotifier:
		e = n.endpoint
	case webhookNotifier:
		e = n.endpoint
	}
	return e.guard(func() error { f(); return nil })
}

// Target is the URL n posts to, for tests of Parse only.
func Target(n Notifier) string {
	switch n := n.(type) {
	case slackNotifier:
		return n.target.String()
	case mattermostNotifier:
		return n.target.String()
	case telegramNotifier:
		return n.target.String() + " chat " + n.chatID
	case webhookNotifier:
		return n.target.String()
	}
	return ""
}
