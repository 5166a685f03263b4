package exec

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/cache"
)

// TestInputDigestsFiles: what inputDigests keeps of each path is found
// again by that path, searched one by one or through the index it builds
// past indexAbove paths, and seen lists every digest noted, the last for
// a path noted twice.
func TestInputDigestsFiles(t *testing.T) {
	for _, n := range []int{1, indexAbove, indexAbove + 1, 3 * indexAbove} {
		in := &inputDigests{a: &Action{}}
		want := map[string]cache.Digest{}
		for i := range n {
			p := fmt.Sprintf("src/f%d", i)
			d := cache.FromBytes([]byte(p))
			in.note(p, cache.FromBytes(nil))
			in.setBaseline(p, pathStat{exists: true, size: int64(i)})
			in.note(p, d)
			f := in.file(p)
			f.memo, f.hasMemo = digestInfo{d: d, x: i%2 == 0}, true
			want[p] = d
		}
		if len(in.files) != n {
			t.Errorf("%d paths: %d entries", n, len(in.files))
		}
		for i := range n {
			p := fmt.Sprintf("src/f%d", i)
			f := in.find(p)
			if f == nil || f.path != p || !f.hasMemo || f.memo.d != want[p] || f.memo.x != (i%2 == 0) ||
				!f.hasBaseline || f.baseline.size != int64(i) {
				t.Errorf("%d paths: find(%q) = %+v", n, p, f)
			}
		}
		if f := in.find("src/none"); f != nil {
			t.Errorf("%d paths: find of a path never added = %+v", n, f)
		}
		if diff := cmp.Diff(want, in.seen()); diff != "" {
			t.Errorf("%d paths: seen mismatch (-want +got):\n%s", n, diff)
		}
	}
}
