package server

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
)

var loginTemplate = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · hepbuild</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/icon.svg" type="image/svg+xml">
</head>
<body>
<header class="top"><a class="brand" href="/"><img src="/static/icon.svg" alt="" width="20" height="20">hepbuild</a></header>
<main>
<form class="login" method="post" action="/login">
<h1>Log in</h1>
<p>This server shows the group's builds to those who have its token.</p>
{{if .Message}}<p class="t-failed">{{.Message}}</p>{{end}}
<input type="hidden" name="next" value="{{.Next}}">
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Log in</button>
</form>
</main>
</body></html>
`))

// loginPage shows the form asking for the token.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, code int, msg string) {
	next := r.URL.RequestURI()
	if r.URL.Path == "/login" {
		next = r.FormValue("next")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = loginTemplate.Execute(w, struct{ Message, Next string }{msg, localPath(next)})
}

// localPath keeps a redirect on this server: a path, not "//host".
// Browsers drop tabs and newlines from a Location and read a backslash as
// a slash ("/\t/host", "/x/../\host" lead off the server), and
// http.Redirect cleans the path: the check is on what the browser follows.
func localPath(p string) string {
	if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Opaque != "" || u.User != nil || u.Host != "" {
		return "/"
	}
	clean := path.Clean(u.Path)
	if !strings.HasPrefix(clean, "/") || strings.HasPrefix(clean, "//") || strings.HasPrefix(clean, "/login") {
		return "/"
	}
	return p
}

// handleLogin answers /login: the form, and the form's post, which sets
// the cookie when the token is right.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if s.token == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.loginPage(w, r, http.StatusOK, "")
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			httpError(w, http.StatusBadRequest, "bad form")
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("token")), s.token) != 1 {
			s.loginPage(w, r, http.StatusUnauthorized, "Wrong token.")
			return
		}
		http.SetCookie(w, &http.Cookie{
			Name: cookieName, Value: s.cookie, Path: "/", MaxAge: 30 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.tls != nil,
		})
		http.Redirect(w, r, localPath(r.PostFormValue("next")), http.StatusSeeOther)
	default:
		httpError(w, http.StatusMethodNotAllowed, "GET or POST")
	}
}
