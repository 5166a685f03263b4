package webdav

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/hepbuild/hepbuild/storage"
)

// maxListing bounds a PROPFIND answer: a hostile or broken server must
// not exhaust memory. 256 MiB is about a million entries.
var maxListing int64 = 256 << 20

// maxStat bounds the PROPFIND answer about one file.
const maxStat = 1 << 20

// propfindBody asks for what File holds, not every property (allprop
// makes some servers compute expensive ones, such as quotas).
const propfindBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>`

// davResponse is one <D:response> of a multistatus answer (RFC 4918
// 14.24). iscollection is XrdHttp's and IIS's: XrdHttp leaves
// resourcetype out for files.
type davResponse struct {
	Href     string `xml:"DAV: href"`
	Status   string `xml:"DAV: status"`
	Propstat []struct {
		Status string `xml:"DAV: status"`
		Prop   struct {
			Length       string `xml:"DAV: getcontentlength"`
			Modified     string `xml:"DAV: getlastmodified"`
			IsCollection string `xml:"DAV: iscollection"`
			ResourceType *struct {
				Collection *struct{} `xml:"DAV: collection"`
			} `xml:"DAV: resourcetype"`
		} `xml:"DAV: prop"`
	} `xml:"DAV: propstat"`
}

// Stat sends PROPFIND with Depth 0; a server that refuses PROPFIND is
// asked with HEAD, which cannot tell a folder.
func (c *Client) Stat(ctx context.Context, rawURL string) (storage.File, error) {
	u, err := c.target(rawURL)
	if err != nil {
		return storage.File{}, err
	}
	var found *storage.File
	err = c.propfind(ctx, u, "0", maxStat, func(f storage.File, _ string) error {
		if found == nil {
			found = &f
		}
		return nil
	})
	var refused *methodRefused
	if errors.As(err, &refused) {
		return c.head(ctx, u, rawURL)
	}
	if err != nil {
		return storage.File{}, err
	}
	if found == nil {
		return storage.File{}, fmt.Errorf("PROPFIND %s: the answer names no file", storage.Redact(u.String()))
	}
	found.URL = c.userURL(rawURL, u.Path)
	return *found, nil
}

// head is Stat for servers without PROPFIND.
func (c *Client) head(ctx context.Context, u *url.URL, rawURL string) (storage.File, error) {
	x, err := c.do(ctx, request{method: http.MethodHead, u: u})
	if err != nil {
		return storage.File{}, err
	}
	defer x.close()
	if !ok(x.resp.StatusCode) {
		return storage.File{}, x.statusError()
	}
	f := storage.File{URL: c.userURL(rawURL, u.Path), Size: x.resp.ContentLength}
	if f.Size < 0 {
		f.Size = 0
	}
	if t, err := http.ParseTime(x.resp.Header.Get("Last-Modified")); err == nil {
		f.ModTime = t.Truncate(time.Second)
	}
	return f, nil
}

// List sends one PROPFIND with Depth 1 to the folder (with a trailing
// slash, the collection's own URL: a server that redirects there would
// otherwise cost a round trip). Writes in progress (storage.IsTemp) are
// left out.
func (c *Client) List(ctx context.Context, rawURL string) ([]storage.File, error) {
	u, err := c.target(rawURL)
	if err != nil {
		return nil, err
	}
	dir := *u
	if !strings.HasSuffix(dir.Path, "/") {
		dir.Path += "/"
		dir.RawPath = ""
	}
	self := path.Clean(dir.Path)
	var files []storage.File
	err = c.propfind(ctx, &dir, "1", maxListing, func(f storage.File, p string) error {
		if path.Clean(p) == self || storage.IsTemp(path.Base(p)) || !inFolder(p, self) {
			return nil
		}
		f.URL = c.userURL(rawURL, p)
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// inFolder reports whether p, a path a listing of folder self (clean)
// names, is an entry of that folder itself: not the folder's parent,
// another folder's file or a sub-folder's, which a hostile or broken
// server may name, and which the caller would take for a file of the
// folder by its last segment.
func inFolder(p, self string) bool {
	q := strings.TrimSuffix(p, "/")
	for _, seg := range strings.Split(q, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return path.Dir(path.Clean(q)) == self
}

// methodRefused says the server does not do PROPFIND.
type methodRefused struct{ err error }

func (m *methodRefused) Error() string { return m.err.Error() }
func (m *methodRefused) Unwrap() error { return m.err }

// propfind sends PROPFIND and calls each with every entry of the answer,
// read as a stream of at most limit bytes: the decoded path of its href
// and its metadata (without URL).
func (c *Client) propfind(ctx context.Context, u *url.URL, depth string, limit int64, each func(f storage.File, p string) error) error {
	x, err := c.do(ctx, request{
		method: "PROPFIND", u: u,
		header: http.Header{"Depth": {depth}, "Content-Type": {"application/xml; charset=utf-8"}},
		body:   strings.NewReader(propfindBody), size: int64(len(propfindBody)),
	})
	if err != nil {
		return err
	}
	defer x.close()
	switch code := x.resp.StatusCode; {
	case code == http.StatusMultiStatus:
	case code == http.StatusMethodNotAllowed || code == http.StatusNotImplemented:
		return &methodRefused{x.statusError()}
	case ok(code):
		return fmt.Errorf("PROPFIND %s: HTTP %d instead of a multistatus answer: not a WebDAV server?", x.what, code)
	default:
		return x.statusError()
	}
	lr := &io.LimitedReader{R: x, N: limit + 1}
	d := xml.NewDecoder(lr)
	bad := func(err error) error {
		if lr.N <= 0 {
			return fmt.Errorf("PROPFIND %s: the answer is larger than %d bytes", x.what, limit)
		}
		if errors.Is(err, storage.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("PROPFIND %s: not a WebDAV multistatus answer: %v", x.what, err)
	}
	raw := c.oldXrdHttp.Load()
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if lr.N <= 0 {
				return bad(err)
			}
			return nil
		}
		if err != nil {
			return bad(err)
		}
		start, isStart := tok.(xml.StartElement)
		if !isStart || start.Name != (xml.Name{Space: "DAV:", Local: "response"}) {
			continue
		}
		var r davResponse
		if err := d.DecodeElement(&r, &start); err != nil {
			return bad(err)
		}
		p, err := hrefPath(r.Href, raw)
		if err != nil {
			return fmt.Errorf("PROPFIND %s: %v", x.what, err)
		}
		f, found := r.file()
		if !found {
			continue
		}
		if err := each(f, p); err != nil {
			return err
		}
	}
}

// file returns the metadata of a response whose properties were found.
func (r *davResponse) file() (storage.File, bool) {
	if r.Status != "" && !statusOK(r.Status) {
		return storage.File{}, false
	}
	var f storage.File
	found := false
	for _, ps := range r.Propstat {
		if !statusOK(ps.Status) {
			continue
		}
		found = true
		p := ps.Prop
		if n, err := strconv.ParseInt(strings.TrimSpace(p.Length), 10, 64); err == nil && n >= 0 {
			f.Size = n
		}
		if t, err := http.ParseTime(strings.TrimSpace(p.Modified)); err == nil {
			f.ModTime = t.Truncate(time.Second)
		}
		if (p.ResourceType != nil && p.ResourceType.Collection != nil) || strings.TrimSpace(p.IsCollection) == "1" {
			f.Dir = true
		}
	}
	if f.Dir {
		// Servers report a folder's size as 0, 4096 or the sum of its
		// content: none of it means anything to hepbuild.
		f.Size = 0
	}
	return f, found
}

// statusOK reads "HTTP/1.1 200 OK"; an absent status counts as success.
func statusOK(s string) bool {
	f := strings.Fields(s)
	if len(f) < 2 {
		return s == ""
	}
	code, err := strconv.Atoi(f[1])
	return err == nil && ok(code)
}

// hrefPath returns the decoded path an href names. An href is a URI
// reference (RFC 4918 8.3): absolute ("https://host/a/b") or absolute
// path ("/a/b"), percent-encoded. Only the path is used: servers name
// themselves by whatever alias they know, and the entry belongs to the
// folder that was listed. raw is for XrdHttp, which writes names as they
// are ("/a/b c%.txt").
func hrefPath(href string, raw bool) (string, error) {
	href = strings.TrimSpace(href)
	if i := strings.Index(href, "://"); i >= 0 && !strings.Contains(href[:i], "/") {
		rest := href[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "/", nil
		}
		href = rest[j:]
	}
	if !strings.HasPrefix(href, "/") {
		return "", fmt.Errorf("the answer names %q, not an absolute path", href)
	}
	if raw {
		return href, nil
	}
	p, err := url.PathUnescape(href)
	if err != nil {
		// Not percent-encoded after all: a server writing names as they are.
		return href, nil
	}
	return p, nil
}

// userURL is the URL of path p on this server in the form the caller
// used (davs:// stays davs://), without query or credentials, and
// without a trailing slash (File.Dir tells a folder).
func (c *Client) userURL(rawURL, p string) string {
	scheme := c.scheme
	if u, err := url.Parse(rawURL); err == nil && u.Scheme != "" {
		scheme = strings.ToLower(u.Scheme)
	}
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return (&url.URL{Scheme: scheme, Host: c.host, Path: p}).String()
}
