package main

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/hepbuild/hepbuild/exec/server"
)

// ServeCmd runs the dashboard, build history and coordinator of a group.
type ServeCmd struct {
	Addr      string    `name:"addr" default:"127.0.0.1:8080" placeholder:"HOST:PORT" help:"Listen on HOST:PORT; without --token-file only a loopback address is allowed."`
	DB        pathValue `name:"db" placeholder:"FILE" help:"The history database (default: serve/history.db in the user's cache folder)."`
	TokenFile pathValue `name:"token-file" placeholder:"FILE" help:"Require the token on the first line of FILE from every build and browser."`
	TLSCert   pathValue `name:"tls-cert" placeholder:"FILE" help:"Serve HTTPS with this PEM certificate (with --tls-key)."`
	TLSKey    pathValue `name:"tls-key" placeholder:"FILE" help:"The PEM private key of --tls-cert."`
}

// Run serves until interrupted; Ctrl-C or SIGTERM stop it cleanly (exit 0).
func (c *ServeCmd) Run(e *env) error {
	db := string(c.DB)
	if db == "" {
		db = filepath.Join(defaultCacheHome(), "serve", "history.db")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return badInput("serve: give both --tls-cert and --tls-key, or neither")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return badInput("serve: --addr %q: %v", c.Addr, err)
	}
	s, err := server.New(server.Options{Addr: c.Addr, DB: db, TokenFile: string(c.TokenFile), TLSCert: string(c.TLSCert), TLSKey: string(c.TLSKey), Log: e.stderr})
	if errors.As(err, new(*server.OptionsError)) {
		return badInput("%v", err)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("hepbuild serve: %w", err)
	}
	fmt.Fprintf(e.stderr, "hepbuild serve: %s (history in %s)\n", s.URL(ln.Addr().String()), db)
	if c.TokenFile != "" {
		fmt.Fprintf(e.stderr, "hepbuild serve: browsers log in once at %slogin with the token; builds send it with their token file\n", s.URL(ln.Addr().String()))
	}
	host, _, _ := net.SplitHostPort(c.Addr)
	switch ip := net.ParseIP(host); {
	case c.TokenFile == "":
		fmt.Fprintln(e.stderr, "hepbuild serve: no --token-file: listening on loopback only, anyone on this machine can read and report builds")
	case c.TLSCert == "" && host != "localhost" && (ip == nil || !ip.IsLoopback()):
		fmt.Fprintln(e.stderr, "hepbuild serve: warning: without --tls-cert the token crosses the network in clear text")
	}
	return s.Serve(e.ctx, ln)
}
