package notify

import (
	"context"
	"encoding/json"
)

// telegramNotifier sends a message as a Telegram bot
// (https://api.telegram.org/bot<TOKEN>/sendMessage). The token is in the
// URL's path, which endpoint keeps out of everything printed.
type telegramNotifier struct {
	*endpoint
	chatID string
}

func (n telegramNotifier) Kind() string     { return "telegram" }
func (n telegramNotifier) GoString() string { return n.String() }

type telegramPayload struct {
	ChatID    string `json:"chat_id"`
	Text      string `json:"text"`
	ParseMode string `json:"parse_mode"`
	// The build page's preview would be a login form or a page the
	// Telegram servers cannot reach: leave it out.
	DisableWebPagePreview bool `json:"disable_web_page_preview"`
}

func telegramPayloadOf(chatID string, m Message) telegramPayload {
	return telegramPayload{ChatID: chatID, Text: render(m, telegram), ParseMode: "HTML", DisableWebPagePreview: true}
}

func (n telegramNotifier) Send(ctx context.Context, m Message) error {
	answer, err := n.post(ctx, telegramPayloadOf(n.chatID, m))
	if err != nil {
		return err
	}
	// The bot API answers {"ok": false, "description": ...} for a message
	// it refused, with a 2xx status in some cases.
	var r struct {
		OK          *bool  `json:"ok"`
		Description string `json:"description"`
	}
	if json.Unmarshal(answer, &r) == nil && r.OK != nil && !*r.OK {
		return n.errorf(nil, "refused: %s", describe([]byte(r.Description)))
	}
	return nil
}
