package sandbox

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// isDir reports whether p exists and is a folder.
func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// hostOf is the real path of p, or p itself.
func hostOf(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// underAny reports whether p is one of the folders or inside one.
func underAny(p string, folders []string) bool {
	for _, f := range folders {
		if p == f || strings.HasPrefix(p, strings.TrimSuffix(f, "/")+"/") {
			return true
		}
	}
	return false
}

// realPaths resolves symlinks in the existing paths and drops the others,
// sorted and without duplicates.
func realPaths(paths []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		r, err := filepath.EvalSymlinks(p)
		if err != nil || r == "/" || seen[r] {
			continue
		}
		seen[r] = true
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// isFile reports whether p exists and is not a folder.
func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
