package main

// The wiring of --notify to exec/notify.

import (
	"context"

	"github.com/hepbuild/hepbuild/exec/notify"
)

type notifier = notify.Notifier

// parseNotifier reads a --notify spec; its errors never quote it.
func parseNotifier(spec string) (notifier, error) { return notify.Parse(spec) }

// maxFailuresNotified is how many failed actions a notification names: a
// phone screen has room for a few, the build's page for the rest.
const maxFailuresNotified = 5

// sendNotifications tells every destination how the build ended.
func sendNotifications(ctx context.Context, ns []notifier, n buildNews) []error {
	return notify.Send(ctx, ns, notify.Message{
		Targets: n.Targets, Outcome: n.Outcome, ExitCode: n.ExitCode,
		Counts: notify.CountsOf(n.Summary), Elapsed: n.Elapsed,
		User: n.User, Host: n.Host, Workspace: n.Workspace, Link: n.Link,
		Failures: notify.FailuresOf(n.Summary, maxFailuresNotified),
	})
}
