package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/disk"
	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/folder"
	"github.com/hepbuild/hepbuild/cache/remote/httpcache"
	"github.com/hepbuild/hepbuild/cache/remote/reapi"
	"github.com/hepbuild/hepbuild/cache/remote/xrootd"
	"github.com/hepbuild/hepbuild/cache/tiered"
)

// RemoteFlags put a remote cache behind the disk cache.
type RemoteFlags struct {
	RemoteCache          string        `name:"remote-cache" placeholder:"URL" help:"A cache shared by the group, behind the disk cache: grpc://, grpcs:// (REAPI), http://, https:// (HTTP cache protocol), root:// (XRootD) or file:// (a shared folder)."`
	RemoteHeader         []string      `name:"remote-header" placeholder:"NAME=VALUE" sep:"none" help:"Send this header with every remote cache request, e.g. authorization=Bearer @FILE (a last word @FILE is replaced by FILE's content). Never printed. Repeatable."`
	RemoteTimeout        time.Duration `name:"remote-timeout" default:"60s" placeholder:"DURATION" help:"Give up a remote cache call, or a transfer that makes no progress, after DURATION."`
	RemoteMaxConnections int           `name:"remote-max-connections" default:"16" placeholder:"N" help:"At most N transfers to and from the remote cache at once."`
	TLSCACert            pathValue     `name:"tls-ca-cert" placeholder:"FILE" help:"Trust remote cache servers whose certificate chains to the CA in FILE (PEM)."`
	TLSClientCert        pathValue     `name:"tls-client-cert" placeholder:"FILE" help:"Authenticate to the remote cache with this certificate (PEM; with --tls-client-key)."`
	TLSClientKey         pathValue     `name:"tls-client-key" placeholder:"FILE" help:"The key of --tls-client-cert (PEM)."`
}

// remoteOptions turns the flags into the options every protocol takes,
// reading header values from files where asked. Errors never quote a
// header's value.
func (f *RemoteFlags) remoteOptions() (remote.Options, error) {
	opts := remote.Options{
		Timeout:        f.RemoteTimeout,
		MaxConnections: f.RemoteMaxConnections,
		CACert:         string(f.TLSCACert),
		ClientCert:     string(f.TLSClientCert),
		ClientKey:      string(f.TLSClientKey),
		ProxyFile:      os.Getenv("X509_USER_PROXY"),
	}
	if f.RemoteTimeout <= 0 {
		return opts, badInput("--remote-timeout %v: give a positive duration, e.g. 30s", f.RemoteTimeout)
	}
	if f.RemoteMaxConnections <= 0 {
		return opts, badInput("--remote-max-connections %d: give at least 1", f.RemoteMaxConnections)
	}
	if (f.TLSClientCert == "") != (f.TLSClientKey == "") {
		return opts, badInput("--tls-client-cert and --tls-client-key go together")
	}
	for _, h := range f.RemoteHeader {
		name, value, ok := strings.Cut(h, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n:") {
			// Not quoted: without its '=' (curl's "NAME: VALUE", a bare
			// token), what looks like a name is the credential.
			return opts, badInput("--remote-header: want NAME=VALUE, e.g. authorization=Bearer @FILE (what was given is not shown: it may hold a credential)")
		}
		v, err := headerValue(value)
		if err != nil {
			return opts, badInput("--remote-header %s: %v", name, err)
		}
		opts.Headers = append(opts.Headers, remote.Header{Name: strings.ToLower(name), Value: v})
	}
	return opts, nil
}

// headerValue replaces a last word @FILE by FILE's content (without its
// final newline), so that a token stays out of shell history and ps.
func headerValue(v string) (string, error) {
	words := strings.Fields(v)
	if len(words) == 0 || !strings.HasPrefix(words[len(words)-1], "@") {
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("the value holds a line break")
		}
		return v, nil
	}
	file := strings.TrimPrefix(words[len(words)-1], "@")
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading the value from %s: %w", file, err)
	}
	content := strings.TrimRight(string(b), "\r\n")
	if content == "" || strings.ContainsAny(content, "\r\n") {
		return "", fmt.Errorf("%s must hold one line (a token)", file)
	}
	return strings.TrimSpace(strings.Join(append(words[:len(words)-1], content), " ")), nil
}

// check refuses a bad remote URL or header before anything else happens,
// also when the build turns out to have nothing to do. Opening contacts no
// server.
func (f *RemoteFlags) check() error {
	if f.RemoteCache == "" {
		return nil
	}
	r, _, err := f.open()
	if err != nil {
		return err
	}
	return r.Close()
}

// open opens the remote cache the flags name, without contacting it; a
// bad URL or header is bad input.
func (f *RemoteFlags) open() (remote.Remote, remote.Options, error) {
	opts, err := f.remoteOptions()
	if err != nil {
		return nil, opts, err
	}
	r, err := openRemote(f.RemoteCache, opts)
	if err != nil {
		return nil, opts, badInput("--remote-cache: %v", err)
	}
	return r, opts, nil
}

// checkRemote asks the remote what it is (capabilities, credentials),
// within the remote timeout.
func checkRemote(ctx context.Context, r remote.Remote, opts remote.Options) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	return r.Check(ctx)
}

// openRemote opens the remote cache the URL names.
func openRemote(raw string, opts remote.Options) (remote.Remote, error) {
	scheme, err := remote.Scheme(raw)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "file":
		return folder.Open(raw, opts)
	case "grpc", "grpcs":
		return reapi.Open(raw, opts)
	case "http", "https":
		return httpcache.Open(raw, opts)
	case "root", "roots":
		return xrootd.Open(raw, opts)
	}
	return nil, fmt.Errorf("remote cache %s: the %s:// protocol is not available in this build", remote.RedactString(raw), scheme)
}

// withRemote puts the remote cache behind the disk cache. A remote that
// cannot be opened is bad input; one that does not answer is a warning,
// and the build goes on with the disk cache.
func (s *session) withRemote(e *env, f *RemoteFlags, dc *disk.Cache) error {
	s.stderr = e.stderr
	r, opts, err := f.open()
	if err != nil {
		return err
	}
	// The check comes first: the results an earlier build left to upload
	// go only to a remote that answered (else their upload fails too, and
	// says so a second time).
	_, checkErr := checkRemote(e.ctx, r, opts)
	if checkErr != nil && e.ctx.Err() != nil {
		r.Close()
		return e.ctx.Err()
	}
	t := tiered.New(dc, r, tiered.Options{
		Timeout:     opts.Timeout,
		PendingFile: filepath.Join(s.outputBase, "remote-pending"),
		Warn:        func(msg string) { fmt.Fprintln(e.stderr, "WARNING:", msg) },
		Off:         checkErr != nil,
	})
	if checkErr != nil {
		msg := checkErr.Error()
		if !strings.HasPrefix(msg, "remote cache "+r.Name()) {
			msg = "remote cache " + r.Name() + ": " + msg
		}
		fmt.Fprintf(e.stderr, "WARNING: %s; building with the disk cache only\n", msg)
	}
	s.cache = t
	s.tiered = t
	return nil
}

// diskTier returns the session's disk cache, behind a remote or not.
func (s *session) diskTier() *disk.Cache {
	switch c := s.cache.(type) {
	case *disk.Cache:
		return c
	case *tiered.Cache:
		d, _ := c.Local().(*disk.Cache)
		return d
	}
	return nil
}

// finishUploads waits for the remote cache's uploads (unless
// --remote-upload=async-exit), showing how many results are left.
func (s *session) finishUploads(e *env, mode string) error {
	t := s.tiered
	if t == nil {
		return nil
	}
	s.building = true
	// The progress display has finished: trouble while the last uploads
	// go out is said on standard error directly.
	t.SetWarn(func(msg string) { fmt.Fprintln(e.stderr, "WARNING:", msg) })
	if mode == "wait" && !t.WritesOff() {
		shown := time.Now()
		err := t.Flush(e.ctx, func(left int) {
			if time.Since(shown) >= 2*time.Second {
				shown = time.Now()
				fmt.Fprintf(e.stderr, "INFO: uploading %d action results to %s\n", left, t.Remote().Name())
			}
		})
		if err != nil {
			// Interrupted: Close keeps what is left for the next build.
			return err
		}
	}
	st := t.Stats()
	if st.Hits+st.Results+st.Downloaded > 0 {
		fmt.Fprintf(e.stderr, "INFO: remote cache %s: %d hits, %d blobs (%s) downloaded; %d results, %d blobs (%s) uploaded; %d calls\n",
			t.Remote().Name(), st.Hits, st.Downloaded, humanBytes(st.DownBytes), st.Results, st.Uploaded, humanBytes(st.UpBytes), st.Calls)
	}
	return nil
}

// closeRemote ends the remote tier; results not uploaded are kept for the
// next build, which is said.
func (s *session) closeRemote() {
	t := s.tiered
	if t == nil {
		return
	}
	s.tiered = nil
	// Only a build uploads: status and explain have nothing to say of it.
	if left, _ := t.Close(); left > 0 && s.building {
		fmt.Fprintf(s.stderr, "INFO: %d action results not uploaded to %s yet; the next build with this output base uploads them\n", left, t.Remote().Name())
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

var _ cache.Cache = (*tiered.Cache)(nil)
