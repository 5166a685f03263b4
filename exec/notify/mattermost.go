package notify

import "context"

// mattermostNotifier posts to a Mattermost incoming webhook
// (https://HOST/hooks/ID).
type mattermostNotifier struct{ *endpoint }

func (n mattermostNotifier) Kind() string     { return "mattermost" }
func (n mattermostNotifier) GoString() string { return n.String() }

type mattermostPayload struct {
	Text     string `json:"text"`
	Username string `json:"username"`
}

func mattermostPayloadOf(m Message) mattermostPayload {
	return mattermostPayload{Text: render(m, mattermost), Username: "hepbuild"}
}

func (n mattermostNotifier) Send(ctx context.Context, m Message) error {
	_, err := n.post(ctx, mattermostPayloadOf(m))
	return err
}
