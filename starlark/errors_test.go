package starlark

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"

	"github.com/hepbuild/hepbuild/graph"
)

// extractTxtar writes the files of a txtar archive into a new temporary workspace.
func extractTxtar(t *testing.T, ar *txtar.Archive) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range ar.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// header reads "key: value" lines from the archive comment.
func header(ar *txtar.Archive, key string) string {
	for _, line := range strings.Split(string(ar.Comment), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && k == key {
			return v
		}
	}
	return ""
}

func analyzeArchive(t *testing.T, file string) (*Loader, error, string) {
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := extractTxtar(t, ar)
	if link := header(ar, "symlink"); link != "" {
		from, to, _ := strings.Cut(link, " -> ")
		if err := os.Symlink(to, filepath.Join(dir, filepath.FromSlash(from))); err != nil {
			t.Fatal(err)
		}
	}
	l, err := NewLoader(dir, nil)
	if err != nil {
		return nil, err, dir
	}
	_, err = l.Analyze(targetsOf(ar))
	return l, err, dir
}

func targetsOf(ar *txtar.Archive) []graph.Label {
	var labels []graph.Label
	for _, s := range strings.Fields(header(ar, "targets")) {
		labels = append(labels, graph.MustParseLabel(s))
	}
	return labels
}

// TestErrors checks that each kind of bad input gives an error that names the
// file, line, column and target, as the archive's "want:" regexp says.
func TestErrors(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.txtar")
	if len(files) == 0 {
		t.Fatal("no test archives")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txtar"), func(t *testing.T) {
			ar, _ := txtar.ParseFile(f)
			want := header(ar, "want")
			_, err, _ := analyzeArchive(t, f)
			if err == nil {
				t.Fatalf("no error; want one matching %q", want)
			}
			if _, ok := err.(*Error); !ok {
				t.Errorf("error is %T, want *Error (maps to exit status 2): %v", err, err)
			}
			if !regexp.MustCompile(want).MatchString(err.Error()) {
				t.Errorf("error mismatch\n got: %s\nwant (regexp): %s", err, want)
			}
		})
	}
}

// TestCheckRemoteURLNamesOneCredential: a URL with several credentials
// gets the same error on every run (a map's order once chose the
// parameter it named), so error output and TestErrorsQueued are stable.
func TestCheckRemoteURLNamesOneCredential(t *testing.T) {
	const u = "https://b.example.org/f.root?X-Amz-Signature=1&X-Amz-Credential=2&sig=3&token=4&policy=5"
	want := CheckRemoteURL(u)
	if want == nil || !strings.Contains(want.Error(), "(X-Amz-Credential=...)") {
		t.Fatalf("got %v, want the first credential parameter in sorted order", want)
	}
	for range 50 {
		if err := CheckRemoteURL(u); err == nil || err.Error() != want.Error() {
			t.Fatalf("got %v, then %v", want, err)
		}
	}
}
