package notify_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepbuild/hepbuild/exec/notify"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec   string
		kind   string // "" when Parse must fail
		str    string // String(), or a part of the error
		target string // where it posts
	}{
		{spec: "slack+https://hooks.slack.com/services/T0SECRET/B0SECRET/XSECRET", kind: "slack",
			str: "slack (hooks.slack.com)", target: "https://hooks.slack.com/services/T0SECRET/B0SECRET/XSECRET"},
		// The host tells the kind of a plain https URL to Slack.
		{spec: "  https://hooks.slack.com/services/T0SECRET/B0SECRET/XSECRET\n", kind: "slack",
			str: "slack (hooks.slack.com)", target: "https://hooks.slack.com/services/T0SECRET/B0SECRET/XSECRET"},
		{spec: "SLACK+HTTPS://hooks.slack.com/services/T0SECRET", kind: "slack", str: "slack (hooks.slack.com)",
			target: "https://hooks.slack.com/services/T0SECRET"},
		{spec: "mattermost+https://chat.example.org/hooks/SECRETID", kind: "mattermost",
			str: "mattermost (chat.example.org)", target: "https://chat.example.org/hooks/SECRETID"},
		{spec: "mattermost+https://chat.example.org:8065/hooks/SECRETID", kind: "mattermost",
			str: "mattermost (chat.example.org:8065)", target: "https://chat.example.org:8065/hooks/SECRETID"},
		{spec: "telegram+https://api.telegram.org/bot123:SECRET-tok_en/sendMessage?chat_id=-1001234", kind: "telegram",
			str: "telegram (api.telegram.org)", target: "https://api.telegram.org/bot123:SECRET-tok_en/sendMessage chat -1001234"},
		{spec: "telegram://123:SECRET-tok_en@-1001234", kind: "telegram",
			str: "telegram (api.telegram.org)", target: "https://api.telegram.org/bot123:SECRET-tok_en/sendMessage chat -1001234"},
		{spec: "telegram://123:SECRET@@mychannel", kind: "telegram",
			str: "telegram (api.telegram.org)", target: "https://api.telegram.org/bot123:SECRET/sendMessage chat @mychannel"},
		{spec: "webhook+https://ci.example.org/hepbuild/SECRET?token=SECRET", kind: "webhook",
			str: "webhook (ci.example.org)", target: "https://ci.example.org/hepbuild/SECRET?token=SECRET"},
		// Plain http only to this machine.
		{spec: "webhook+http://127.0.0.1:9999/SECRET", kind: "webhook", str: "webhook (127.0.0.1:9999)",
			target: "http://127.0.0.1:9999/SECRET"},
		{spec: "webhook+http://localhost/SECRET", kind: "webhook", str: "webhook (localhost)", target: "http://localhost/SECRET"},
		{spec: "webhook+http://[::1]:80/SECRET", kind: "webhook", str: "webhook ([::1]:80)", target: "http://[::1]:80/SECRET"},

		{spec: "", str: "empty destination"},
		{spec: "   ", str: "empty destination"},
		{spec: "https://chat.example.org/hooks/SECRET", str: "prefix it with one, e.g. webhook+https://chat.example.org/..."},
		{spec: "webhook+http://ci.example.org/SECRET", str: "use https"},
		{spec: "slack+http://hooks.slack.com/services/SECRET", str: "use https"},
		{spec: "webhook+http://127.0.0.2.example.org/SECRET", str: "use https"},
		{spec: "pager+https://ci.example.org/SECRET", str: `unknown kind "pager"`},
		{spec: "slack+ftp://hooks.slack.com/SECRET", str: `scheme "slack+ftp" is not http or https`},
		{spec: "hooks.slack.com/services/SECRET", str: "not a URL"},
		{spec: "webhook+https:///SECRET", str: "without a host"},
		{spec: "webhook+https://user:SECRET@ci.example.org/x", str: "user information"},
		{spec: "webhook+https://ci.example.org/%zzSECRET", str: "not a URL"},
		{spec: "telegram+https://api.telegram.org/botSECRET/getUpdates?chat_id=1", str: "want https://api.telegram.org/bot<TOKEN>/sendMessage"},
		{spec: "telegram+https://api.telegram.org/bot123:SECRET/sendMessage", str: "needs ?chat_id="},
		{spec: "telegram+https://api.telegram.org/bot123:SECRET/sendMessage?chat_id=abc", str: "needs ?chat_id="},
		{spec: "telegram://123:SECRET", str: "want telegram://<TOKEN>@<CHAT_ID>"},
		{spec: "telegram://123:SECRET/x@42", str: "want telegram://<TOKEN>@<CHAT_ID>"},
		{spec: "telegram://123:SECRET@", str: "want telegram://<TOKEN>@<CHAT_ID>"},
		{spec: "@", str: "@ must be followed by a file name"},
	} {
		n, err := notify.Parse(tc.spec)
		if tc.kind == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %v, want an error", tc.spec, n)
				continue
			}
			if !strings.Contains(err.Error(), tc.str) {
				t.Errorf("Parse(%q) error %q, want it to say %q", tc.spec, err, tc.str)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("Parse error shows the secret: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		if n.Kind() != tc.kind || n.String() != tc.str {
			t.Errorf("Parse(%q) = %s %q, want %s %q", tc.spec, n.Kind(), n.String(), tc.kind, tc.str)
		}
		if got := notify.Target(n); got != tc.target {
			t.Errorf("Parse(%q) posts to %q, want %q", tc.spec, got, tc.target)
		}
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good", "# the group's channel, kept out of .hepbuildrc\n\n   \n  mattermost+https://chat.example.org/hooks/SECRETID  \nwebhook+https://other.example.org/x\n")
	n, err := notify.Parse("@" + good)
	if err != nil {
		t.Fatal(err)
	}
	if n.String() != "mattermost (chat.example.org)" || notify.Target(n) != "https://chat.example.org/hooks/SECRETID" {
		t.Errorf("@FILE = %s posting to %s, want the first URL in the file", n, notify.Target(n))
	}

	for _, tc := range []struct{ path, want string }{
		{write("comments", "# nothing\n\n"), "holds no destination"},
		{write("empty", ""), "holds no destination"},
		{write("nested", "@"+good+"\n"), "holds another @FILE"},
		{write("bad", "https://chat.example.org/hooks/SECRETID\n"), "the destination in " + filepath.Join(dir, "bad")},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		_, err := notify.Parse("@" + tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(@%s) = %v, want an error saying %q", filepath.Base(tc.path), err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Parse error shows the secret: %v", err)
		}
	}
}
