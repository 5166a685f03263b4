//go:build !linux

package sandbox

import "fmt"

// imageFolderArgv fails: an unpacked root file system runs through
// bubblewrap, which needs Linux namespaces.
func imageFolderArgv(image, dir string, rw, ro []string) ([]string, error) {
	return nil, &EnvironmentError{Kind: "container", Err: fmt.Errorf("image %s is a root file system folder, which needs bubblewrap: %v", image, errNoNamespaces)}
}
