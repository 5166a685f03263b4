package notify

import (
	"context"
	"strings"
)

// slackNotifier posts to a Slack incoming webhook
// (https://hooks.slack.com/services/...).
type slackNotifier struct{ *endpoint }

func (n slackNotifier) Kind() string     { return "slack" }
func (n slackNotifier) GoString() string { return n.String() }

// slackColours colour the bar beside the message by outcome, so that the
// channel's history reads at a glance.
var slackColours = map[string]string{
	OutcomeSuccess:     "good",
	OutcomeFailed:      "danger",
	OutcomeInterrupted: "warning",
	OutcomeError:       "danger",
}

type slackPayload struct {
	Text        string            `json:"text"`
	Attachments []slackAttachment `json:"attachments,omitempty"`
}

type slackAttachment struct {
	Color    string   `json:"color,omitempty"`
	Fallback string   `json:"fallback"`
	Text     string   `json:"text"`
	MrkdwnIn []string `json:"mrkdwn_in"`
}

// slackPayloadOf puts the headline in the text (what a phone's notification
// shows) and the details in one attachment coloured by the outcome.
func slackPayloadOf(m Message) slackPayload {
	head, body, _ := strings.Cut(render(m, slack), "\n")
	return slackPayload{
		Text: head,
		Attachments: []slackAttachment{{
			Color:    slackColours[m.Outcome],
			Fallback: slackText(title(m)),
			Text:     body,
			MrkdwnIn: []string{"text"},
		}},
	}
}

func (n slackNotifier) Send(ctx context.Context, m Message) error {
	_, err := n.post(ctx, slackPayloadOf(m))
	return err
}
