package remote

import "testing"

// TestRedactString: a URL named in a message keeps no password, whether
// it parses or not.
func TestRedactString(t *testing.T) {
	for raw, want := range map[string]string{
		"grpcs://alice:pw@cache.example:443/hep?token=pw": "grpcs://cache.example:443/hep",
		"alice:pw@cache.example:9092":                     "cache.example:9092",
		"grpc://alice:pw%zz@cache.example:9092/hep":       "grpc://cache.example:9092/hep",
		"file:///shared/cache":                            "file:///shared/cache",
	} {
		if got := RedactString(raw); got != want {
			t.Errorf("RedactString(%q) = %q, want %q", raw, got, want)
		}
	}
}
