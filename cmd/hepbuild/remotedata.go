package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/storage"
	storagefile "github.com/hepbuild/hepbuild/storage/file"
	"github.com/hepbuild/hepbuild/storage/webdav"
	"github.com/hepbuild/hepbuild/storage/xrootd"
)

// RemoteDataFlags say how remote inputs (remote_files, remote_glob) are
// validated and read.
type RemoteDataFlags struct {
	Offline            bool          `name:"offline" help:"Take remote files' identities from hepbuild.lock and ask storage nothing (a file not in the lock is an error); downloads still need storage."`
	StorageTokenFile   pathValue     `name:"storage-token-file" placeholder:"FILE" help:"The bearer token for grid storage (default: WLCG token discovery: $BEARER_TOKEN, $BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u<uid>, /tmp/bt_u<uid>). Never printed."`
	StorageCACert      pathValue     `name:"storage-ca-cert" placeholder:"FILE" help:"Trust storage servers whose certificate chains to the CA in FILE (PEM); default: the system's roots."`
	StorageTimeout     time.Duration `name:"storage-timeout" default:"60s" placeholder:"DURATION" help:"Give up a storage query, or a transfer that makes no progress, after DURATION."`
	StorageConnections int           `name:"storage-connections" default:"16" placeholder:"N" help:"At most N transfers to and from each storage server at once."`

	// lenient: commands that only need remote targets' outputs (clean)
	// list globs from the lock where they can and validate nothing.
	lenient bool
}

// storageOpeners are the protocols remote data speaks, by URL scheme.
var storageOpeners = map[string]storage.Opener{
	"root":  xrootd.Open,
	"roots": xrootd.Open, // which says why it cannot
	"davs":  webdav.Open,
	"https": webdav.Open,
	"http":  webdav.Open,
	"file":  storagefile.Open,
}

// storageOptions are the credentials and limits of storage clients.
func (f *RemoteDataFlags) storageOptions() (storage.Options, error) {
	opts, err := f.storageLimits()
	if err != nil {
		return opts, err
	}
	return opts, f.addCredentials(&opts)
}

// storageLimits are the timeout, connections and CA of storage clients:
// the flags, checked before anything is loaded.
func (f *RemoteDataFlags) storageLimits() (storage.Options, error) {
	opts := storage.Options{
		Timeout:        f.StorageTimeout,
		MaxConnections: f.StorageConnections,
		CACert:         string(f.StorageCACert),
	}
	// Zero is unset (commands that build their flags in code).
	if f.StorageTimeout < 0 {
		return opts, badInput("--storage-timeout %v: give a positive duration, e.g. 30s", f.StorageTimeout)
	}
	if f.StorageConnections < 0 {
		return opts, badInput("--storage-connections %d: give at least 1", f.StorageConnections)
	}
	return opts, nil
}

// addCredentials adds the storage credentials: the token of the WLCG bearer
// token discovery and the X.509 proxy ($X509_USER_PROXY or
// /tmp/x509up_u<uid>). Errors never quote a token.
func (f *RemoteDataFlags) addCredentials(opts *storage.Options) error {
	if p := os.Getenv("X509_USER_PROXY"); p != "" {
		opts.ProxyFile = p
	} else if p := fmt.Sprintf("/tmp/x509up_u%d", os.Getuid()); fileExists(p) {
		opts.ProxyFile = p
	}
	token, err := f.bearerToken()
	if err != nil {
		return err
	}
	if token != "" {
		opts.Headers = []remote.Header{{Name: "authorization", Value: "Bearer " + token}}
	}
	return nil
}

// bearerToken finds the storage token: --storage-token-file, else the
// WLCG bearer token discovery order.
func (f *RemoteDataFlags) bearerToken() (string, error) {
	read := func(what, file string) (string, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", badInput("%s: reading the token: %v", what, err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" || strings.ContainsAny(t, "\r\n \t") {
			return "", badInput("%s: %s must hold one token on one line (its content is not shown)", what, file)
		}
		return t, nil
	}
	if f.StorageTokenFile != "" {
		return read("--storage-token-file", string(f.StorageTokenFile))
	}
	if t := strings.TrimSpace(os.Getenv("BEARER_TOKEN")); t != "" {
		if strings.ContainsAny(t, "\r\n \t") {
			return "", badInput("$BEARER_TOKEN must hold one token (its content is not shown)")
		}
		return t, nil
	}
	if p := os.Getenv("BEARER_TOKEN_FILE"); p != "" {
		return read("$BEARER_TOKEN_FILE", p)
	}
	name := fmt.Sprintf("bt_u%d", os.Getuid())
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && fileExists(filepath.Join(d, name)) {
		return read("$XDG_RUNTIME_DIR/"+name, filepath.Join(d, name))
	}
	if p := filepath.Join("/tmp", name); fileExists(p) {
		return read(p, p)
	}
	return "", nil
}

// remoteData is a build's view of grid storage: the client pool, the lock
// file and the resolver that validates against both.
type remoteData struct {
	pool     *storage.Pool
	resolver *storage.Resolver
}

// openRemoteData loads the workspace's lock file and makes the resolver.
// It contacts no server, and looks for credentials only when a storage
// client is first needed: a workspace without remote files never does.
func (f *RemoteDataFlags) openRemoteData(ctx context.Context, root string) (*remoteData, error) {
	opts, err := f.storageLimits()
	if err != nil {
		return nil, err
	}
	lock, err := storage.LoadLock(filepath.Join(root, storage.LockName))
	if err != nil {
		return nil, badInput("%v", err)
	}
	pool := storage.NewPool(opts, storageOpeners).WithCredentials(f.addCredentials)
	r := storage.NewResolver(ctx, pool, lock)
	r.Offline = f.Offline
	return &remoteData{pool: pool, resolver: r}, nil
}

// glob answers what remote_glob asks (starlark.RemoteData). A lenient
// command (clean, aquery, --nobuild) takes the lock's answer where there is
// one.
func (d *remoteData) glob(lenient bool) func(string) ([]string, error) {
	return func(pattern string) ([]string, error) {
		if lenient {
			if us, ok := d.resolver.Lock().Glob(pattern); ok {
				return us, nil
			}
		}
		return d.resolver.Glob(pattern)
	}
}

// globFunc adapts a function to starlark.RemoteData.
type globFunc func(string) ([]string, error)

func (g globFunc) Glob(pattern string) ([]string, error) { return g(pattern) }

func (d *remoteData) Close() error { return d.pool.Close() }

// resolve validates the remote files of the actions against storage and
// the lock file and fills in their identities (the fetch actions' keys),
// then saves the lock if it changed. A file storage lacks is an error
// naming the target that reads it.
func (d *remoteData) resolve(actions []*exec.Action, stderr io.Writer) error {
	var urls []string
	owners := map[string]*exec.Action{}
	for _, a := range actions {
		if a.Extras().Remote == nil {
			continue
		}
		if _, ok := owners[a.Extras().Remote.URL]; !ok {
			urls = append(urls, a.Extras().Remote.URL)
		}
		owners[a.Extras().Remote.URL] = a
	}
	if len(urls) == 0 {
		return nil
	}
	start := time.Now()
	ids, err := d.resolver.Resolve(urls)
	var me *storage.MissingError
	if errors.As(err, &me) {
		var lines []string
		for i, u := range me.URLs {
			if i == 10 {
				lines = append(lines, fmt.Sprintf("... and %d more", len(me.URLs)-10))
				break
			}
			a := owners[u]
			lines = append(lines, fmt.Sprintf("%s: %s: no such file on storage: %s", a.Pos, a.Owner, storage.Redact(u)))
		}
		return &buildFailedError{strings.Join(lines, "\n") + "\n(the file was moved or deleted; fix the target's urls, or run hepbuild fetch after the storage is right)"}
	}
	if err != nil {
		return fmt.Errorf("validating remote files against storage: %w", err)
	}
	for _, a := range actions {
		r := a.Extras().Remote
		if r == nil {
			continue
		}
		id := ids[r.URL]
		r.Size, r.Checksum, r.ModTime = id.Size, id.Checksum, id.ModTime
		if a.Kind == exec.KindWrite {
			// A streamed file: its readers see this identity record.
			a.Extra.Content = []byte(r.Identity() + "\n")
		}
	}
	saved, err := d.resolver.Lock().Save()
	if err != nil {
		return fmt.Errorf("writing %s: %w", storage.LockName, err)
	}
	if stderr != nil {
		how := fmt.Sprintf("%s (%s) in %.2fs", count(int(d.resolver.Queries()), "query", "queries"),
			count(int(d.resolver.Checksums()), "checksum", "checksums"), time.Since(start).Seconds())
		if d.resolver.Offline {
			how = "from " + storage.LockName + " (--offline)"
		}
		note := ""
		if saved {
			note = "; " + storage.LockName + " updated"
		}
		fmt.Fprintf(stderr, "INFO: %d remote files checked: %s%s\n", len(urls), how, note)
	}
	return nil
}

// Fetch is the exec.Fetcher of fetch actions: a download verified against
// the recorded size and checksum.
func (d *remoteData) Fetch(ctx context.Context, f *exec.RemoteFile, w io.Writer) error {
	var sum storage.Checksum
	if f.Checksum != "" {
		var err error
		if sum, err = storage.ParseChecksum(f.Checksum); err != nil {
			return &exec.FetchError{URL: storage.Redact(f.URL), Msg: err.Error()}
		}
	}
	err := d.pool.Download(ctx, f.URL, f.Size, f.ModTime, sum, w)
	switch {
	case errors.Is(err, storage.ErrChecksumMismatch):
		return &exec.FetchError{URL: storage.Redact(f.URL), Msg: "refused: " + strings.TrimPrefix(err.Error(), storage.Redact(f.URL)+": ")}
	case errors.Is(err, storage.ErrNotExist):
		return &exec.FetchError{URL: storage.Redact(f.URL), Msg: "no such file on storage any more (run hepbuild fetch)"}
	}
	return err
}

// remoteActions are the actions with remote files, sorted by URL.
func remoteActions(actions []*exec.Action) []*exec.Action {
	var out []*exec.Action
	for _, a := range actions {
		if a.Extras().Remote != nil {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Extras().Remote.URL < out[j].Extras().Remote.URL })
	return out
}

// count is "1 query", "2 queries".
func count(n int, one, many string) string {
	return fmt.Sprintf("%d %s", n, plural(n, one, many))
}
