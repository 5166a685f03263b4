package exec

import "testing"

func TestWordDiff(t *testing.T) {
	cases := []struct {
		was, now []string
		want     string
	}{
		{[]string{"/bin/bash", "-c", "hist -name ttbb_jesUp -o out.root in.root"}, []string{"/bin/bash", "-c", "hist -name ttbb_CMS_scale_jUp -o out.root in.root"},
			"`... -name ttbb_jesUp -o ...` -> `... -name ttbb_CMS_scale_jUp -o ...`"},
		{[]string{"gen", "-seed", "1"}, []string{"gen", "-seed", "1", "-events", "10"}, "`... 1` -> `... 1 -events 10`"},
		{[]string{"a", "b"}, []string{"x", "b"}, "`a b` -> `x b`"},
		{[]string{"bash", "-c", "a  b"}, []string{"bash", "-c", "a b"}, "the same words, different spacing or quoting"},
	}
	for _, c := range cases {
		if got := wordDiff(c.was, c.now); got != c.want {
			t.Errorf("wordDiff(%q, %q)\n got %s\nwant %s", c.was, c.now, got, c.want)
		}
	}
}
