package starlark

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/graph"
)

// RemoteData is what analysis asks of grid storage: the files a
// remote_glob matches. The build command provides it (and validates every
// remote file's identity after analysis); without it, remote_glob is an
// error. Implementations are safe for concurrent use.
type RemoteData interface {
	// Glob returns the URLs of the files matching pattern, a URL whose
	// last path segment holds the wildcards * ? [...], sorted.
	Glob(pattern string) ([]string, error)
}

// SetRemoteData sets what remote_glob lists folders with.
func (l *Loader) SetRemoteData(rd RemoteData) { l.remote = rd }

// remoteSchemes are the URL schemes remote_files accepts.
var remoteSchemes = map[string]bool{"root": true, "roots": true, "davs": true, "https": true, "http": true, "file": true}

func remoteFilesAttrs() map[string]*attrSpec {
	return map[string]*attrSpec{
		"urls":    {typ: graph.AttrStringList, def: []string(nil), mandatory: true, doc: "The files' URLs: root://, davs://, https://, http:// or file://."},
		"stream":  {typ: graph.AttrBool, def: false, doc: "Give actions the URL instead of a downloaded copy; they read the file from storage themselves and get the network."},
		"out_dir": {typ: graph.AttrString, def: "", doc: "The folder, relative to the package's output folder, the files go to (default: the target's name)."},
	}
}

func remoteGlobAttrs() map[string]*attrSpec {
	return map[string]*attrSpec{
		"url":     {typ: graph.AttrString, def: "", mandatory: true, doc: "A folder URL whose last segment has wildcards, e.g. root://host//store/ttH/*.root."},
		"exclude": {typ: graph.AttrStringList, def: []string(nil), doc: "Patterns of file names (last segment) to leave out."},
		"stream":  {typ: graph.AttrBool, def: false, doc: "As remote_files' stream."},
		"out_dir": {typ: graph.AttrString, def: "", doc: "As remote_files' out_dir."},
	}
}

func attrBool(t *graph.Target, name string) bool {
	a, _ := t.Attr(name)
	b, _ := a.Value.(bool)
	return b
}

// CheckRemoteURL rejects what remote_files cannot name: an unknown
// scheme, no path, and credentials in the URL (they would be printed and
// recorded in hepbuild.lock; tokens go in a token file).
func CheckRemoteURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return fmt.Errorf("%q is not a URL such as root://host//path/file.root", redactURL(raw))
	}
	if !remoteSchemes[strings.ToLower(u.Scheme)] {
		return fmt.Errorf("%s: scheme %q: want root://, davs://, https://, http:// or file://", redactURL(raw), u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%s: the URL holds user information: credentials go in a token file or X.509 proxy, never in a URL (it is recorded in hepbuild.lock)", redactURL(raw))
	}
	// Sorted: the error names the same parameter on every run.
	for _, k := range slices.Sorted(maps.Keys(u.Query())) {
		switch strings.ToLower(k) {
		case "authz", "access_token", "token", "bearer_token", "xrd.wantprot",
			// Signed URLs (S3, Azure SAS, Google Cloud Storage, CloudFront,
			// xrootd's signed CGI): the signature is the credential.
			"x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid",
			"signature", "sig", "x-goog-signature", "x-goog-credential", "googleaccessid",
			"key-pair-id", "policy", "password", "passwd", "xrd.gsiusrpxy", "xrdcl.secgsi":
			return fmt.Errorf("%s: the URL carries a credential (%s=...): use a token file instead", redactURL(raw), k)
		}
	}
	if u.Path == "" || strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("%s: names no file", redactURL(raw))
	}
	// The last segment becomes a file name in the output tree, and the
	// URL a line of hepbuild.lock and of messages: "..", "." or an
	// encoded "/" would name a folder, or another file than it seems,
	// and a control character would break both.
	if strings.IndexFunc(u.Path, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return fmt.Errorf("%s: the path holds a control character", redactURL(raw))
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%s: the path has a . or .. segment: name the file itself", redactURL(raw))
		}
	}
	if strings.Contains(strings.ToLower(u.EscapedPath()), "%2f") {
		return fmt.Errorf("%s: the path holds an encoded / (%%2F): write the folders with /", redactURL(raw))
	}
	if u.Host == "" && strings.ToLower(u.Scheme) != "file" {
		return fmt.Errorf("%s: no host", redactURL(raw))
	}
	return nil
}

// redactURL drops what may be a credential: user information and query.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		return u.String()
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		raw = raw[i+1:]
	}
	s, _, _ := strings.Cut(raw, "?")
	return s
}

// remoteName is the file name a remote file gets below its target's
// folder: the last segment of the URL's path.
func remoteName(raw string) string {
	u, _ := url.Parse(raw)
	return path.Base(u.Path)
}

func analyzeRemoteFiles(a *analyzer, t *graph.Target) (*configured, error) {
	return analyzeRemote(a, t, attrStrings(t, "urls"))
}

func analyzeRemoteGlob(a *analyzer, t *graph.Target) (*configured, error) {
	fail := func(format string, args ...any) error {
		return &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf(format, args...)}
	}
	pattern := attrString(t, "url")
	u, err := url.Parse(pattern)
	if err != nil {
		return nil, fail("remote_glob: url %q is not a URL", redactURL(pattern))
	}
	dir, last := path.Split(u.Path)
	if strings.ContainsAny(dir, "*?[") {
		return nil, fail("remote_glob: %s: wildcards are allowed in the last path segment only", redactURL(pattern))
	}
	if _, err := path.Match(last, ""); err != nil {
		return nil, fail("remote_glob: %s: bad pattern %q", redactURL(pattern), last)
	}
	probe := *u
	probe.Path = dir + "x"
	if err := CheckRemoteURL(probe.String()); err != nil {
		return nil, fail("remote_glob: %v", err)
	}
	excludes := attrStrings(t, "exclude")
	for _, x := range excludes {
		if _, err := path.Match(x, ""); err != nil {
			return nil, fail("remote_glob: exclude %q: bad pattern", x)
		}
	}
	if a.l.remote == nil {
		return nil, fail("remote_glob: this command does not list remote folders")
	}
	urls, err := a.l.remote.Glob(pattern)
	if err != nil {
		e := fail("remote_glob: %v", err).(*Error)
		e.Err = err
		return nil, e
	}
	var kept []string
	for _, raw := range urls {
		name := remoteName(raw)
		skip := false
		for _, x := range excludes {
			if ok, _ := path.Match(x, name); ok {
				skip = true
				break
			}
		}
		if !skip {
			kept = append(kept, raw)
		}
	}
	if len(kept) == 0 {
		return nil, fail("remote_glob: %s matches no file", redactURL(pattern))
	}
	return analyzeRemote(a, t, kept)
}

// analyzeRemote makes one action per remote file: a download into
// hepbuild-out/<pkg>/<name>/<file>, or for stream = True a small file
// recording the file's identity, whose readers get the URL. The identity
// (size, checksum) is filled in after analysis, when the build has
// validated it against storage and hepbuild.lock.
func analyzeRemote(a *analyzer, t *graph.Target, urls []string) (*configured, error) {
	fail := func(format string, args ...any) error {
		return &Error{Pos: t.Pos, Target: t.Label, Msg: fmt.Sprintf(format, args...)}
	}
	if len(urls) == 0 {
		return nil, fail("%s: urls is empty", t.RuleClass)
	}
	stream := attrBool(t, "stream")
	dir := exec.OutDir + "/" + t.Label.Path()
	if od := attrString(t, "out_dir"); od != "" {
		if path.IsAbs(od) || path.Clean(od) != od || od == "." || od == ".." || strings.HasPrefix(od, "../") {
			return nil, fail("%s: out_dir %q: want a relative folder inside the package, such as \"events\"", t.RuleClass, od)
		}
		dir = exec.OutDir + "/" + path.Join(t.Label.Pkg, od)
	}
	byName := map[string]string{}
	files := make([]*File, 0, len(urls))
	for _, raw := range urls {
		if err := CheckRemoteURL(raw); err != nil {
			return nil, fail("%s: %v", t.RuleClass, err)
		}
		name := remoteName(raw)
		if prev, ok := byName[name]; ok {
			if prev == raw {
				return nil, fail("%s: %s is listed twice", t.RuleClass, redactURL(raw))
			}
			return nil, fail("%s: %s and %s have the same file name %q: put them in two targets", t.RuleClass, redactURL(prev), redactURL(raw), name)
		}
		byName[name] = raw
		art := exec.Artifact{Path: dir + "/" + name}
		act := &exec.Action{
			Owner: t.Label,
			Pos:   t.Pos,
			Extra: &exec.Extra{Remote: &exec.RemoteFile{URL: raw}, Tags: attrStrings(t, "tags")},
		}
		if stream {
			art.URL = raw
			art.Path += ".url"
			act.Kind, act.Mnemonic, act.Progress = exec.KindWrite, "RemoteIdentity", "Recording "+name+" of %{label}"
		} else {
			act.Kind, act.Mnemonic, act.Progress = exec.KindFetch, "Fetch", "Downloading "+name+" of %{label}"
		}
		act.Outputs = []exec.Artifact{art}
		if err := a.addAction(act); err != nil {
			return nil, err
		}
		files = append(files, &File{art: art, owner: t})
	}
	return &configured{target: t, files: files}, nil
}

// execPath is how an action names an input: its URL for a file streamed
// from storage, else its exec-root path.
func execPath(art exec.Artifact) string {
	if art.URL != "" {
		return art.URL
	}
	return art.Path
}
