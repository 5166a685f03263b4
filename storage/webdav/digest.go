package webdav

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/hepbuild/hepbuild/storage"
)

// Checksum asks for the adler32 the server keeps with HEAD and
// "Want-Digest: adler32" (RFC 3230), which XrdHttp, dCache, EOS and
// StoRM answer. A server without checksums (nginx) ignores the header:
// the error then wraps storage.ErrNoChecksum.
func (c *Client) Checksum(ctx context.Context, rawURL string) (storage.Checksum, error) {
	u, err := c.target(rawURL)
	if err != nil {
		return storage.Checksum{}, err
	}
	// An old XrdHttp may answer twice (isOldXrdHttp): the connection is
	// not used again, so the second answer is never taken for another
	// request's. Until the server is known, assume it may be one.
	closeAfter := c.oldXrdHttp.Load() || !c.identified.Load()
	x, err := c.do(ctx, request{method: http.MethodHead, u: u, header: http.Header{"Want-Digest": {"adler32"}}, close: closeAfter})
	if err != nil {
		return storage.Checksum{}, err
	}
	defer x.close()
	if !ok(x.resp.StatusCode) {
		return storage.Checksum{}, x.statusError()
	}
	sum, found, err := ParseDigest(strings.Join(x.resp.Header.Values("Digest"), ","))
	if err != nil {
		return storage.Checksum{}, fmt.Errorf("HEAD %s: %w", x.what, err)
	}
	if !found {
		return storage.Checksum{}, fmt.Errorf("HEAD %s: %w: no adler32 in the answer to Want-Digest", x.what, storage.ErrNoChecksum)
	}
	return sum, nil
}

// ParseDigest finds the adler32 in the value of an RFC 3230 Digest
// header: a comma-separated list of algo=value, the algorithm's name in
// any case ("adler32=0a1b2c3d, MD5=..."). RFC 3230 gives adler32 as 8
// hex digits, which XrdHttp and dCache send; some servers send the 4
// bytes in base64 instead. Both become 8 lower-case hex digits. found is
// false when the header holds no adler32; err is set when it holds one
// that is neither.
func ParseDigest(header string) (sum storage.Checksum, found bool, err error) {
	for _, item := range strings.Split(header, ",") {
		algo, value, hasValue := strings.Cut(strings.TrimSpace(item), "=")
		if !hasValue || !strings.EqualFold(strings.TrimSpace(algo), "adler32") {
			continue
		}
		v, err := adler32Value(strings.TrimSpace(value))
		if err != nil {
			return storage.Checksum{}, true, err
		}
		return storage.Checksum{Algo: "adler32", Value: v}, true, nil
	}
	return storage.Checksum{}, false, nil
}

// adler32Value reads hex (8 digits, or fewer with the leading zeros
// dropped) or base64 of the 4 bytes (which, padded, is never hex).
func adler32Value(v string) (string, error) {
	if len(v) > 0 && len(v) <= 8 && isHex(v) {
		return strings.Repeat("0", 8-len(v)) + strings.ToLower(v), nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(v); err == nil && len(b) == 4 {
			return hex.EncodeToString(b), nil
		}
	}
	return "", fmt.Errorf("the server's adler32 %q is neither 8 hex digits nor 4 bytes in base64", v)
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}
