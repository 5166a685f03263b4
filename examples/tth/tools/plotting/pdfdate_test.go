package plotting

import (
	"bytes"
	"regexp"
	"testing"

	"go-hep.org/x/hep/hplot"
)

// A PDF plot carries a fixed date, not the time it was drawn: the same plot must give the same
// bytes in every build.
func TestPDFDateIsFixed(t *testing.T) {
	spec := Spec{
		Backgrounds: []Process{{Name: "ttbb", Hist: hist(100, 50)}},
		Data:        hist(90, 60),
		Var:         "mbb",
		Category:    "6j4b",
		Lumi:        20,
	}
	fig, err := Draw(spec, "pdf")
	if err != nil {
		t.Fatal(err)
	}
	w, h := Size()
	wt, err := hplot.WriterTo(fig, w, h, "pdf")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	dates := regexp.MustCompile(`/(CreationDate|ModDate) \(D:(\d+)`).FindAllSubmatch(buf.Bytes(), -1)
	if len(dates) != 2 {
		t.Fatalf("the PDF has %d creation and modification dates, want 2", len(dates))
	}
	for _, d := range dates {
		if string(d[2]) != "20000101000000" {
			t.Errorf("the PDF's /%s is %s, want the fixed 20000101000000", d[1], d[2])
		}
	}
}
