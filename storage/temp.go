package storage

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
)

// TempName is the name a Put writes under before renaming onto base, in
// the same folder: hidden, unique, marked as hepbuild's, and short enough
// for the usual 255-byte limit of a name. Every protocol uses it, so that
// List of any storage leaves out writes in progress (IsTemp).
func TempName(base string) string {
	var b [8]byte
	rand.Read(b[:])
	if len(base) > 200 {
		base = base[:200]
	}
	return "." + base + ".hepbuild-" + hex.EncodeToString(b[:]) + ".tmp"
}

var tempName = regexp.MustCompile(`^\..*\.hepbuild-[0-9a-f]{16}\.tmp$`)

// IsTemp reports whether name (the last element of a path) is a TempName:
// a write in progress, or left by one that was killed.
func IsTemp(name string) bool { return tempName.MatchString(name) }
