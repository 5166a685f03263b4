package notify

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Kinds are the destinations Parse knows, in the order error messages list
// them.
var Kinds = []string{"slack", "mattermost", "telegram", "webhook"}

// Hosts a plain https URL is recognised by, and the bot API's host for the
// short telegram:// form.
const (
	slackHost    = "hooks.slack.com"
	telegramHost = "api.telegram.org"
)

// Parse reads a destination:
//
//	KIND+https://HOST/PATH   KIND is slack, mattermost, telegram or webhook
//	https://hooks.slack.com/services/...   the kind told by the host
//	telegram://TOKEN@CHAT_ID               the bot API at api.telegram.org
//	@FILE                                  the first line of FILE that is
//	                                       neither empty nor a # comment
//
// A telegram+https URL is the bot API's sendMessage URL with the chat in
// its query: https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<ID>.
// Only https is accepted, except plain http to this machine (localhost,
// 127.0.0.1, ::1), where nobody can overhear it. Errors never quote the
// spec: it is a credential.
func Parse(spec string) (Notifier, error) {
	spec = strings.TrimSpace(spec)
	if file, ok := strings.CutPrefix(spec, "@"); ok {
		line, err := readSpecFile(file)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(line, "@") {
			return nil, fmt.Errorf("notify: %s: holds another @FILE; it must hold the URL itself", file)
		}
		n, err := parseURL(line)
		if err != nil {
			return nil, fmt.Errorf("notify: the destination in %s: %w", file, err)
		}
		return n, nil
	}
	n, err := parseURL(spec)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	return n, nil
}

// readSpecFile returns the first line of file that is neither empty nor a
// comment: the file may explain itself, and the URL stays out of
// .hepbuildrc and out of shell history.
func readSpecFile(file string) (string, error) {
	if file == "" {
		return "", errors.New("notify: @ must be followed by a file name")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		// The *PathError names the file, not its content.
		return "", fmt.Errorf("notify: reading the destination: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("notify: reading %s: %w", file, err)
	}
	return "", fmt.Errorf("notify: %s holds no destination (only empty lines and # comments)", file)
}

func parseURL(spec string) (Notifier, error) {
	if spec == "" {
		return nil, errors.New("empty destination")
	}
	if rest, ok := strings.CutPrefix(spec, "telegram://"); ok {
		return parseTelegramShort(rest)
	}
	u, err := url.Parse(spec)
	if err != nil {
		// url.Error quotes the URL; its cause does not.
		return nil, fmt.Errorf("not a URL: %v", unwrapURL(err))
	}
	kind, scheme, explicit := strings.Cut(u.Scheme, "+")
	if !explicit {
		kind, scheme = "", u.Scheme
	}
	if scheme != "https" && scheme != "http" {
		if scheme == "" {
			return nil, fmt.Errorf("not a URL; want KIND+https://HOST/PATH (kinds: %s) or @FILE", strings.Join(Kinds, ", "))
		}
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%s URL without a host", u.Scheme)
	}
	host := u.Host
	if u.User != nil {
		// Credentials in the authority would be sent to the host in
		// clear Basic auth and are nothing these destinations take.
		return nil, fmt.Errorf("%s: user information in the URL is not supported", host)
	}
	if scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("%s: plain http sends the secret URL in clear; use https (http is allowed only to this machine)", host)
	}
	if !explicit {
		if strings.EqualFold(u.Hostname(), slackHost) {
			kind = "slack"
		} else {
			return nil, fmt.Errorf("%s: cannot tell the kind of destination from the URL; prefix it with one, e.g. webhook+%s://%s/... (kinds: %s)",
				host, scheme, host, strings.Join(Kinds, ", "))
		}
	}
	target := &url.URL{Scheme: scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	switch kind {
	case "slack":
		return slackNotifier{newEndpoint(kind, target)}, nil
	case "mattermost":
		return mattermostNotifier{newEndpoint(kind, target)}, nil
	case "webhook":
		return webhookNotifier{newEndpoint(kind, target)}, nil
	case "telegram":
		return parseTelegramURL(target)
	}
	return nil, fmt.Errorf("%s: unknown kind %q (kinds: %s)", host, kind, strings.Join(Kinds, ", "))
}

// parseTelegramURL takes the bot API's own URL,
// https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<ID>, as people
// copy it from the bot's documentation.
func parseTelegramURL(u *url.URL) (Notifier, error) {
	usage := fmt.Errorf("telegram %s: want https://%s/bot<TOKEN>/sendMessage?chat_id=<ID> or telegram://<TOKEN>@<CHAT_ID>", u.Host, telegramHost)
	rest, ok := strings.CutPrefix(u.Path, "/bot")
	if !ok {
		return nil, usage
	}
	token, method, ok := strings.Cut(rest, "/")
	if !ok || method != "sendMessage" || !validToken(token) {
		return nil, usage
	}
	chat := u.Query().Get("chat_id")
	if !validChat(chat) {
		return nil, fmt.Errorf("telegram %s: the URL needs ?chat_id=<ID> (a number, or @channel)", u.Host)
	}
	// The chat goes in the JSON body, where the API reads it too; the
	// URL keeps only the token.
	target := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/bot" + token + "/sendMessage"}
	return telegramNotifier{endpoint: newEndpoint("telegram", target, token, chat), chatID: chat}, nil
}

// parseTelegramShort takes TOKEN@CHAT_ID. A bot token has no @ (digits,
// a colon, letters, digits, - and _), so the first @ ends it and a chat
// may be a channel's @name.
func parseTelegramShort(rest string) (Notifier, error) {
	token, chat, ok := strings.Cut(strings.TrimSuffix(rest, "/"), "@")
	if !ok || !validToken(token) || !validChat(chat) {
		return nil, errors.New("telegram: want telegram://<TOKEN>@<CHAT_ID>, e.g. telegram://123456:ABC-DEF@-1001234567890")
	}
	target := &url.URL{Scheme: "https", Host: telegramHost, Path: "/bot" + token + "/sendMessage"}
	return telegramNotifier{endpoint: newEndpoint("telegram", target, token, chat), chatID: chat}, nil
}

// validToken accepts what a bot token is made of, so that a token cannot
// change the URL it is put into.
func validToken(t string) bool {
	if t == "" {
		return false
	}
	for _, r := range t {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune(":-_", r)) {
			return false
		}
	}
	return true
}

// validChat accepts a chat id (a number, negative for groups) or a
// channel's @name.
func validChat(c string) bool {
	if name, ok := strings.CutPrefix(c, "@"); ok {
		return validToken(name)
	}
	n := strings.TrimPrefix(c, "-")
	if n == "" {
		return false
	}
	for _, r := range n {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
