package notify

import "context"

// webhookNotifier posts the message as JSON to any URL, for whatever the
// group's own tools do with it.
type webhookNotifier struct{ *endpoint }

func (n webhookNotifier) Kind() string     { return "webhook" }
func (n webhookNotifier) GoString() string { return n.String() }

// WebhookVersion is the version of the generic webhook's JSON. Field names
// are stable within a version; a change that is not an addition bumps it.
const WebhookVersion = 1

// WebhookPayload is the body of a generic webhook.
type WebhookPayload struct {
	Version   int           `json:"version"`
	Title     string        `json:"title"`
	Targets   []string      `json:"targets"`
	Outcome   string        `json:"outcome"`
	ExitCode  int           `json:"exit_code"`
	Counts    WebhookCounts `json:"counts"`
	ElapsedMS int64         `json:"elapsed_ms"`
	User      string        `json:"user"`
	Host      string        `json:"host"`
	Workspace string        `json:"workspace"`
	Link      string        `json:"link"`
	Failures  []string      `json:"failures"`
	// Text is the message as plain text, for receivers that forward it
	// to people (mail, chat) without formatting it themselves.
	Text string `json:"text"`
}

// WebhookCounts are Counts with the webhook's field names.
type WebhookCounts struct {
	Total    int `json:"total"`
	Executed int `json:"executed"`
	Cached   int `json:"cached"`
	UpToDate int `json:"up_to_date"`
	Failed   int `json:"failed"`
	Skipped  int `json:"skipped"`
}

// WebhookPayloadOf is the JSON a generic webhook receives for m. Lists are
// never null, so that receivers need not tell null from empty.
func WebhookPayloadOf(m Message) WebhookPayload {
	c := m.Counts
	p := WebhookPayload{
		Version:   WebhookVersion,
		Title:     title(m),
		Targets:   append([]string{}, m.Targets...),
		Outcome:   m.Outcome,
		ExitCode:  m.ExitCode,
		Counts:    WebhookCounts{c.Total, c.Executed, c.Cached, c.UpToDate, c.Failed, c.Skipped},
		ElapsedMS: m.Elapsed.Milliseconds(),
		User:      m.User,
		Host:      m.Host,
		Workspace: m.Workspace,
		Link:      m.Link,
		Failures:  append([]string{}, m.Failures...),
		Text:      render(m, plain),
	}
	return p
}

func (n webhookNotifier) Send(ctx context.Context, m Message) error {
	_, err := n.post(ctx, WebhookPayloadOf(m))
	return err
}
