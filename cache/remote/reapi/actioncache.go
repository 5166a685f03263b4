package reapi

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/hepbuild/hepbuild/cache"
)

// GetActionResult asks the action cache; an absent action is cache.ErrNotFound.
func (c *Cache) GetActionResult(ctx context.Context, action cache.Digest) (*repb.ActionResult, error) {
	return c.GetActionResultInline(ctx, action, nil)
}

// GetActionResultInline is GetActionResult asking the server to send, with
// the result, the contents of the output files at paths and the log
// (stdout), as far as its size limit allows: a small result then costs one
// call instead of two. The caller verifies inlined contents.
func (c *Cache) GetActionResultInline(ctx context.Context, action cache.Digest, paths []string) (*repb.ActionResult, error) {
	var res *repb.ActionResult
	err := c.unary(ctx, "reading the result of action "+action.String(), func(ctx context.Context) (err error) {
		res, err = c.ac.GetActionResult(ctx, &repb.GetActionResultRequest{
			InstanceName: c.instance, ActionDigest: action.ToProto(), DigestFunction: repb.DigestFunction_SHA256,
			InlineStdout: paths != nil, InlineOutputFiles: paths,
		})
		return err
	})
	return res, err
}

// PutActionResult stores the result of an action in the action cache.
func (c *Cache) PutActionResult(ctx context.Context, action cache.Digest, r *repb.ActionResult) error {
	return c.unary(ctx, "storing the result of action "+action.String(), func(ctx context.Context) error {
		_, err := c.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{
			InstanceName: c.instance, ActionDigest: action.ToProto(), ActionResult: r, DigestFunction: repb.DigestFunction_SHA256,
		})
		return err
	})
}

// ChecksCompleteness: REAPI servers return an action result only while the
// blobs it references are in their CAS (bazel-remote and Buildbarn check).
func (c *Cache) ChecksCompleteness() bool { return true }
