package rootio

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go-hep.org/x/hep/hbook"
)

func hist(name string, vals ...float64) *hbook.H1D {
	h := hbook.NewH1D(len(vals), 0, float64(len(vals)))
	h.Ann["name"] = name
	for i, v := range vals {
		h.Fill(float64(i)+0.5, v)
	}
	return h
}

func TestWriteHistsIsDeterministicAndRoundTrips(t *testing.T) {
	hs := []*hbook.H1D{hist("b", 1, 2, 3), hist("a", 4, 5, 6)}
	var got [][]byte
	for _, dir := range []string{t.TempDir(), t.TempDir()} {
		path := filepath.Join(dir, "h.root")
		if err := WriteHists(path, hs); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("%s holds %d entries, want only h.root", dir, len(entries))
		}
	}
	if !bytes.Equal(got[0], got[1]) {
		t.Errorf("the same histograms written to two folders give different bytes")
	}

	path := filepath.Join(t.TempDir(), "h.root")
	if err := WriteHists(path, hs); err != nil {
		t.Fatal(err)
	}
	back, err := ReadHists(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var sums []float64
	for _, h := range back {
		names = append(names, h.Name())
		sums = append(sums, h.Integral())
	}
	if diff := cmp.Diff([]string{"a", "b"}, names); diff != "" {
		t.Errorf("names mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{15, 6}, sums); diff != "" {
		t.Errorf("sums mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteHistsRejectsBadNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		hs   []*hbook.H1D
	}{
		{"empty", []*hbook.H1D{hist("", 1)}},
		{"duplicate", []*hbook.H1D{hist("a", 1), hist("a", 2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "h.root")
			if err := WriteHists(path, tc.hs); err == nil {
				t.Fatal("no error")
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("%s exists after a failed write", path)
			}
		})
	}
}

func TestReadHistErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.root")
	os.WriteFile(garbage, []byte("not a root file at all, really not"), 0o644)
	good := filepath.Join(dir, "good.root")
	if err := WriteHists(good, []*hbook.H1D{hist("a", 1)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, name string }{
		{filepath.Join(dir, "missing.root"), "a"},
		{garbage, "a"},
		{good, "b"},
	} {
		_, err := ReadHist(tc.path, tc.name)
		if err == nil {
			t.Errorf("ReadHist(%s, %s): no error", tc.path, tc.name)
			continue
		}
		if !bytes.Contains([]byte(err.Error()), []byte(tc.path)) {
			t.Errorf("ReadHist(%s, %s) = %v, does not name the file", tc.path, tc.name, err)
		}
	}
}
