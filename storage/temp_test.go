package storage

import "testing"

func TestTempName(t *testing.T) {
	for _, base := range []string{"x.root", ".hidden", "a b%", string(make([]byte, 300))} {
		n := TempName(base)
		if !IsTemp(n) {
			t.Errorf("IsTemp(TempName(%q)) = false for %q", base, n)
		}
		if len(n) > 255 {
			t.Errorf("TempName of a %d-byte name has %d bytes", len(base), len(n))
		}
		if TempName(base) == n {
			t.Errorf("TempName(%q) twice gave %q", base, n)
		}
	}
	for _, name := range []string{"x.root", ".x.root", "x.hepbuild-0123456789abcdef.tmp", ".x.hepbuild-01.tmp"} {
		if IsTemp(name) {
			t.Errorf("IsTemp(%q) = true", name)
		}
	}
}
