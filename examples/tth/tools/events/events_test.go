package events

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestWriteReadRoundTrip(t *testing.T) {
	evts := []Event{
		{ID: 1, Proc: 0, NJet: 4, NBTag: 2, JetPt: []float32{200, 100, 50, 30}, HT: 380, MBB: 120, DNN: 0.9, Weight: 1.1},
		{ID: 2, Proc: 3, NJet: 0, JetPt: []float32{}, Weight: 1},
		{ID: 3, Proc: 1, NJet: 6, NBTag: 4, JetPt: []float32{90, 80, 70, 60, 50, 40}, HT: 390, MBB: 80, DNN: 0.1, Weight: 0.9},
	}
	path := filepath.Join(t.TempDir(), "e.root")
	if err := Write(path, Tree{Name: "events_a", Events: evts}, Tree{Name: "events_b", Events: evts[:1]}); err != nil {
		t.Fatal(err)
	}
	names, err := TreeNames(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"events_a", "events_b"}, names); diff != "" {
		t.Errorf("trees mismatch (-want +got):\n%s", diff)
	}
	got, err := Read(path, "events_a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(evts, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	if _, err := Read(path, ""); err == nil || !strings.Contains(err.Error(), "exactly one tree") {
		t.Errorf("Read without a tree name from a two-tree file: %v", err)
	}
	if _, err := Read(path, "nope"); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Read of a missing tree: %v, want an error naming the file", err)
	}
}

func TestWriteRejectsInconsistentJets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.root")
	err := Write(path, Tree{Name: "events", Events: []Event{{NJet: 2, JetPt: []float32{1}}}})
	if err == nil {
		t.Fatal("no error")
	}
	if _, err := TreeNames(path); err == nil {
		t.Errorf("a failed write left %s behind", path)
	}
}
