package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// allowedImports lists, for each package of the module, the hepbuild packages
// it may import (DESIGN.md: imports point down). Prefixes end with "/".
var allowedImports = map[string][]string{
	// The module root holds BUILD.md for the binary (docs.go).
	"":                              {},
	"graph":                         {},
	"graph/query":                   {"graph"},
	"cache":                         {},
	"cache/":                        {"cache", "cache/"},
	"storage":                       {"cache", "cache/"},
	"storage/":                      {"storage", "cache", "cache/"},
	"sandbox":                       {"sandbox/internal/reaper", "internal/shell"},
	"sandbox/internal/reaper":       {},
	"exec":                          {"graph", "cache", "sandbox"},
	"exec/":                         {"exec", "graph", "cache", "sandbox", "cache/"},
	"exec/server/api":               {},
	"exec/server":                   {"exec", "cache", "exec/server/"},
	"exec/server/web":               {"exec/server/api"},
	"exec/server/coord":             {"exec", "cache", "exec/server/api"},
	"exec/server/report":            {"exec", "cache", "exec/server/api"},
	"exec/server/report/reporttest": {"exec/server/api"},
	"exec/notify":                   {"exec"},
	"rules":                         {},
	"starlark":                      {"graph", "exec", "rules", "internal/shell"},
	// How a task's command line is made and read (starlark makes it,
	// sandbox takes simple ones over from bash).
	"internal/shell":      {},
	"internal/testserver": {},
	"cmd/hepbuild":        {"*"},
	"examples/":           {"examples/"},
	"bench/":              {"*"},
	"internal/browser":    {},

	// Batch backends (exec/batch/htcondor, ...) implement the engine's
	// Backend and share its internal helpers (job scripts, stand-ins).
	"exec/batch/": {"exec", "exec/batch", "exec/batch/internal/", "graph", "cache", "sandbox", "cache/"},
}

// onlyStarlark are external modules only the starlark package may import.
var onlyStarlark = []string{"go.starlark.net", "github.com/bazelbuild/buildtools"}

const module = "github.com/hepbuild/hepbuild"

func rulesFor(pkg string) ([]string, bool) {
	if r, ok := allowedImports[pkg]; ok {
		return r, true
	}
	best := ""
	for k := range allowedImports {
		if strings.HasSuffix(k, "/") && strings.HasPrefix(pkg, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return nil, false
	}
	return allowedImports[best], true
}

func allowed(rules []string, imp string) bool {
	for _, r := range rules {
		if r == "*" || r == imp || (strings.HasSuffix(r, "/") && strings.HasPrefix(imp, r)) {
			return true
		}
	}
	return false
}

// TestImportLayout enforces the package layout of DESIGN.md.
func TestImportLayout(t *testing.T) {
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	n := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Doc        string
			Name       string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		rules, ok := rulesFor(rel)
		if !ok {
			t.Errorf("package %s has no entry in allowedImports: add one that keeps imports pointing down", rel)
			continue
		}
		if p.Doc == "" && p.Name != "main" {
			t.Errorf("package %s has no package doc comment saying what it is for", rel)
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") {
				ir := strings.TrimPrefix(imp, module+"/")
				if !allowed(rules, ir) {
					t.Errorf("%s imports %s, which DESIGN.md's layout does not allow", rel, ir)
				}
			}
			for _, ext := range onlyStarlark {
				if strings.HasPrefix(imp, ext) && rel != "starlark" {
					t.Errorf("%s imports %s: only the starlark package may", rel, imp)
				}
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("go list found only %d packages", n)
	}
}
