package reapi

import (
	"context"
	"fmt"
	"slices"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/bazelbuild/remote-apis/build/bazel/semver"
)

// Check asks the server's capabilities: it must speak REAPI v2 (its
// announced range includes a 2.x: the cache calls hepbuild makes are
// those of 2.0, which every 2.x server answers, Buildbarn's 2.3–2.12
// included) and SHA-256. It records the batch limit and
// whether ByteStream transfers may be zstd-compressed, and describes what
// it found, e.g. "REAPI 2.0–2.1, zstd".
func (c *Cache) Check(ctx context.Context) (string, error) {
	var caps *repb.ServerCapabilities
	err := c.unary(ctx, "asking capabilities", func(ctx context.Context) (err error) {
		caps, err = c.caps.GetCapabilities(ctx, &repb.GetCapabilitiesRequest{InstanceName: c.instance})
		return err
	})
	if err != nil {
		return "", err
	}
	low, high := caps.GetLowApiVersion(), caps.GetHighApiVersion()
	if (low != nil || high != nil) && (low.GetMajor() > 2 || high.GetMajor() < 2) {
		return "", fmt.Errorf("%s: the server speaks REAPI %s–%s, not v2", c.label(), version(low), version(high))
	}
	cc := caps.GetCacheCapabilities()
	if cc == nil {
		return "", fmt.Errorf("%s: the server offers no cache", c.label())
	}
	if !slices.Contains(cc.GetDigestFunctions(), repb.DigestFunction_SHA256) {
		return "", fmt.Errorf("%s: the server does not offer SHA-256 digests (it offers %v)", c.label(), cc.GetDigestFunctions())
	}
	maxBatch := cc.GetMaxBatchTotalSizeBytes()
	if maxBatch <= 0 {
		maxBatch = defaultMaxBatch
	}
	maxBatch = min(maxBatch, maxMessageSize)
	if maxBatch < 2*batchOverhead {
		return "", fmt.Errorf("%s: the server's batch limit of %d bytes is too small", c.label(), maxBatch)
	}
	zstd := slices.Contains(cc.GetSupportedCompressors(), repb.Compressor_ZSTD)
	c.mu.Lock()
	c.checked, c.maxBatch, c.zstd = true, maxBatch, zstd
	c.mu.Unlock()
	desc := "REAPI " + version(low) + "–" + version(high)
	if zstd {
		desc += ", zstd"
	}
	return desc, nil
}

func compare(a, b *semver.SemVer) int {
	for _, d := range []int32{a.GetMajor() - b.GetMajor(), a.GetMinor() - b.GetMinor(), a.GetPatch() - b.GetPatch()} {
		if d != 0 {
			return int(d)
		}
	}
	return 0
}

func version(v *semver.SemVer) string {
	s := fmt.Sprintf("%d.%d", v.GetMajor(), v.GetMinor())
	if v.GetPatch() != 0 {
		s += fmt.Sprintf(".%d", v.GetPatch())
	}
	return s
}
