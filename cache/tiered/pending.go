package tiered

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hepbuild/hepbuild/cache"
)

// The pending file lists, one "hash/size" per line, the action results a
// build wrote to the disk cache but did not get to upload. The next build
// with the same output base uploads them before anything else, so
// --remote-upload=async-exit or an interrupted build loses no result for
// the group.

func (c *Cache) resumePending() {
	if c.opts.PendingFile == "" {
		return
	}
	b, err := os.ReadFile(c.opts.PendingFile)
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		d, err := cache.ParseDigest(strings.TrimSpace(sc.Text()))
		if err != nil {
			continue // a damaged line: that result stays local
		}
		c.enqueue(c.uploadCtx, unit{action: d})
	}
	os.Remove(c.opts.PendingFile)
}

// savePending records the results not uploaded; it returns how many.
func (c *Cache) savePending() int {
	c.pendMu.Lock()
	left := make([]string, 0, len(c.pending))
	for d := range c.pending {
		left = append(left, d.String())
	}
	c.pendMu.Unlock()
	if c.opts.PendingFile == "" {
		return len(left)
	}
	if len(left) == 0 {
		os.Remove(c.opts.PendingFile)
		return 0
	}
	sort.Strings(left)
	tmp, err := os.CreateTemp(filepath.Dir(c.opts.PendingFile), ".pending-*")
	if err != nil {
		return len(left)
	}
	_, werr := tmp.WriteString(strings.Join(left, "\n") + "\n")
	if cerr := tmp.Close(); werr == nil && cerr == nil {
		if os.Rename(tmp.Name(), c.opts.PendingFile) == nil {
			return len(left)
		}
	}
	os.Remove(tmp.Name())
	return len(left)
}
