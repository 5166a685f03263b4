//go:build !linux

package sandbox

import "errors"

// renameNew fails here: it would take a check and a rename, which is what
// its caller does when it fails.
func renameNew(src, dst string) error { return errors.ErrUnsupported }
