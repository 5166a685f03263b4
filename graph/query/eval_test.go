package query

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hepbuild/hepbuild/graph"
)

func run(t *testing.T, src graph.PackageSource, q, workingPkg string) ([]string, error) {
	t.Helper()
	r, err := Run(context.Background(), src, q, workingPkg)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, l := range r.Labels() {
		out = append(out, l.String())
	}
	return out, nil
}

func TestEval(t *testing.T) {
	libDeps := []string{"//lib:a.txt", "//lib:b.in", "//lib:b.txt.gen", "//lib:genb", "//lib:lib"}
	binDeps := append([]string{"//app:bin", "//app:main.txt"}, append(libDeps, "//tools:gen")...)
	tests := []struct {
		q    string
		want []string
	}{
		{"//lib:lib", []string{"//lib:lib"}},
		{"//lib", []string{"//lib:lib"}},
		{"//lib:all", []string{"//lib:genb", "//lib:lib"}},
		{"//lib:*", []string{"//lib:BUILD.hep", "//lib:a.txt", "//lib:b.in", "//lib:b.txt.gen", "//lib:genb", "//lib:lib"}},
		{"//lib/...", []string{"//lib/sub:sub", "//lib:genb", "//lib:lib"}},
		{"//... - //lib/... - //cyc/...", []string{"//app:all_files", "//app:bin", "//tools:gen", "//tools:hidden"}},
		{"bin", []string{"//app:bin"}},
		{":bin + bin.out", []string{"//app:bin", "//app:bin.out"}},

		// deps skips the implicit _tool attribute; a generated file depends on its rule.
		{"deps(//app:bin)", binDeps},
		{"deps(//app:bin, 0)", []string{"//app:bin"}},
		{"deps(//app:bin, 1)", []string{"//app:bin", "//app:main.txt", "//lib:lib", "//tools:gen"}},
		{"deps(//lib:b.txt.gen, 1)", []string{"//lib:b.txt.gen", "//lib:genb"}},
		{"deps(//lib:a.txt)", []string{"//lib:a.txt"}},
		{"deps(//cyc:x)", []string{"//cyc:x", "//cyc:y"}},

		{"rdeps(//..., //lib:b.in)", []string{"//app:all_files", "//app:bin", "//app:bin.out", "//lib:b.in", "//lib:b.txt.gen", "//lib:genb", "//lib:lib"}},
		{"rdeps(//..., //lib:b.in, 1)", []string{"//lib:b.in", "//lib:genb"}},
		{"rdeps(//lib:all, //lib:b.in)", []string{"//lib:b.in", "//lib:b.txt.gen", "//lib:genb", "//lib:lib"}},
		{"rdeps(//tools:all, //lib:b.in)", []string{}}, // outside the universe
		{"rdeps(//app:bin, //tools:hidden)", []string{}},

		{"allpaths(//app:all_files, //lib:lib)", []string{"//app:all_files", "//app:bin", "//app:bin.out", "//lib:lib"}},
		{"allpaths(//app:all_files, //lib:a.txt)", []string{"//app:all_files", "//app:bin", "//app:bin.out", "//lib:a.txt", "//lib:lib"}},
		{"allpaths(//lib:lib, //app:bin)", []string{}},
		{"somepath(//app:all_files, //lib:b.in)", []string{"//app:all_files", "//app:bin", "//app:bin.out", "//lib:b.in", "//lib:b.txt.gen", "//lib:genb", "//lib:lib"}},
		// The shortest path wins: all_files reaches a.txt directly.
		{"somepath(//app:all_files, //lib:a.txt)", []string{"//app:all_files", "//lib:a.txt"}},
		{"somepath(//lib:lib, //app:bin)", []string{}},
		{"somepath(//lib:lib, //lib:lib + //app:bin)", []string{"//lib:lib"}},

		{`kind("task rule", //...)`, []string{"//app:bin", "//lib:genb", "//tools:gen"}},
		{`kind("^source file$", //lib:*)`, []string{"//lib:BUILD.hep", "//lib:a.txt", "//lib:b.in"}},
		{`kind(generated, //...:*)`, []string{"//app:bin.out", "//lib:b.txt.gen", "//tools:gen.sh"}},
		{`filter("\.txt$", //app:* + //lib:*)`, []string{"//app:main.txt", "//lib:a.txt"}},
		{`filter("^//lib:", deps(//app:bin, 1))`, []string{"//lib:lib"}},

		{`attr(tags, "^\[a, z\]$", //...)`, []string{"//app:bin"}}, // tags sorted, as Bazel prints them
		{`attr(tags, "^\[\]$", //lib:all)`, []string{"//lib:genb", "//lib:lib"}},
		{`attr(srcs, "^\[//app:main.txt, //lib:lib\]$", //...)`, []string{"//app:bin"}},
		{`attr(outs, "//lib:b.txt.gen", //...)`, []string{"//lib:genb"}},
		{`attr(retries, "^2$", //...)`, []string{"//lib:genb"}},
		{`attr(local, "^1$", //...)`, []string{"//lib:genb"}},
		{`attr(environ, "^\{A=1, B=2\}$", //...)`, []string{"//lib:genb"}},
		{`attr(env, "^$", //...)`, []string{"//lib:genb"}},
		{`attr(_tool, "hidden", //...)`, []string{"//app:bin"}},
		{`attr(name, "^gen", //...)`, []string{"//lib:genb", "//tools:gen"}},
		{`attr(nosuchattr, "", //...)`, []string{}},

		{"labels(srcs, //app:all)", []string{"//app:README", "//app:bin.out", "//app:main.txt", "//lib:a.txt", "//lib:lib"}},
		{"labels(outs, //app:bin)", []string{"//app:bin.out"}},
		{"labels(_tool, //app:bin)", []string{"//tools:hidden"}},
		{"labels(cmd, //app:bin)", []string{}},

		{"buildfiles(//app:bin)", []string{"//app:BUILD.hep", "//tools:BUILD.hep", "//tools:defs.star"}},
		{"buildfiles(//lib/...)", []string{"//lib/sub:BUILD.hep", "//lib:BUILD.hep"}},
		{"loadfiles(//app:bin + //lib:lib)", []string{"//tools:defs.star"}},
		{"loadfiles(//lib:lib)", []string{}},

		{"siblings(//lib:a.txt)", []string{"//lib:BUILD.hep", "//lib:a.txt", "//lib:b.in", "//lib:b.txt.gen", "//lib:genb", "//lib:lib"}},
		{"siblings(//lib:a.txt + //cyc:x)", []string{"//cyc:BUILD.hep", "//cyc:x", "//cyc:y", "//lib:BUILD.hep", "//lib:a.txt", "//lib:b.in", "//lib:b.txt.gen", "//lib:genb", "//lib:lib"}},
		{"some(//lib:lib)", []string{"//lib:lib"}},
		{"some(//lib:*, 2)", []string{"//lib:BUILD.hep", "//lib:a.txt"}},
		{"some(//lib:all, 99)", []string{"//lib:genb", "//lib:lib"}},

		{"set()", []string{}},
		{"set(//lib:lib //tools:gen //lib:lib)", []string{"//lib:lib", "//tools:gen"}},
		{"let x = //lib:* in $x - kind(rule, $x)", []string{"//lib:BUILD.hep", "//lib:a.txt", "//lib:b.in", "//lib:b.txt.gen"}},
		{"let x = //lib:all in let x = //tools:all in $x", []string{"//tools:gen", "//tools:hidden"}}, // inner binding shadows
		{"let x = //lib:all in (let y = //tools:gen in $y) + $x", []string{"//lib:genb", "//lib:lib", "//tools:gen"}},
		{"//lib:all union //tools:all except //lib:genb intersect //lib:*", []string{"//lib:lib"}},
		{"deps(//app:bin) ^ rdeps(//..., //lib:b.in)", []string{"//app:bin", "//lib:b.in", "//lib:b.txt.gen", "//lib:genb", "//lib:lib"}},
	}
	src := smallGraph(t)
	for _, tc := range tests {
		got, err := run(t, src, tc.q, "app")
		if err != nil {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", tc.q, diff)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct{ q, want string }{
		{"//app:bim", "no such target '//app:bim' (did you mean '//app:bin'?)"},
		{"deps(//app:bin) + //lib:lbi", "no such target '//lib:lbi' (did you mean '//lib:lib'?)"},
		{"//ap:all", "no such package 'ap': no BUILD or BUILD.hep file in it (did you mean 'app'?)"},
		{"//nowhere/...", "target pattern //nowhere/...: no such package 'nowhere'"},
		{"/abs/path", "absolute file system paths are not target patterns"},
		{"$nope", "undefined variable $nope at column 1"},
		{"let x = //lib:lib in $y", "undefined variable $y at column 22"},
		{`kind("[", //...)`, `kind: invalid regular expression "["`},
		{`attr(tags, "(", //...)`, `attr: invalid regular expression "("`},
		{"some(//lib:all - //lib:all)", "some: the argument set is empty"},
		{"some(//lib:all, 0)", "some: the count must be at least 1"},
		{"deps(", "syntax error at column 6"},
	}
	src := smallGraph(t)
	for _, tc := range tests {
		_, err := run(t, src, tc.q, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want it to contain %q", tc.q, err, tc.want)
		}
	}
}

func TestEvalMissingDependency(t *testing.T) {
	src := newMemSource(t, map[string]pkgSpec{
		"a": {rules: []rule{{name: "a", class: "filegroup", srcs: []string{"//b:gone"}}}},
		"b": {rules: []rule{{name: "b", class: "filegroup"}}},
	})
	_, err := run(t, src, "deps(//a)", "")
	var nst *graph.NoSuchTargetError
	if !errors.As(err, &nst) || nst.Label.String() != "//b:gone" {
		t.Fatalf("error = %v, want a *graph.NoSuchTargetError for //b:gone", err)
	}
	if want := "loading the dependencies of //a:a: no such target '//b:gone'"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want prefix %q", err, want)
	}
	// Nothing but deps needs //b:gone.
	if got, err := run(t, src, "//a + siblings(//a)", ""); err != nil || len(got) != 2 {
		t.Errorf("//a + siblings(//a) = %v, %v; want //a:BUILD.hep and //a:a", got, err)
	}
}

// TestEvalLoadsOnlyWhatItNeeds checks that deps() loads the packages it
// reaches, each once, and no others.
func TestEvalLoadsOnlyWhatItNeeds(t *testing.T) {
	src := smallGraph(t)
	if _, err := run(t, src, "deps(//app:bin) + deps(//lib:lib) + siblings(//lib:lib)", ""); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"app": 1, "lib": 1, "tools": 1}
	if diff := cmp.Diff(want, src.loading); diff != "" {
		t.Errorf("package loads mismatch (-want +got):\n%s", diff)
	}
}

// TestEvalLoadsConcurrently holds every load but the first until two are in
// flight at once: a sequential evaluator never gets there.
func TestEvalLoadsConcurrently(t *testing.T) {
	src := smallGraph(t)
	src.block = make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := run(t, src, "deps(//app:bin)", "")
		done <- err
	}()
	deadline := time.After(10 * time.Second)
	for src.peak.Load() < 2 {
		select {
		case <-deadline:
			close(src.block)
			t.Fatalf("the packages of //app:bin's dependencies (lib, tools) were never loaded concurrently")
		case <-time.After(time.Millisecond):
		}
	}
	close(src.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestEvalCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e, err := Parse("deps(//app:bin)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Eval(ctx, smallGraph(t), e, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Eval with a cancelled context = %v, want context.Canceled", err)
	}
}

// wideSource is one package of n rules, each depending on the next two and
// on a source file of its own: the shape of a large parametrised analysis.
func wideSource(b testing.TB, n int) *memSource {
	rules := make([]rule, n)
	for i := range rules {
		srcs := []string{fmt.Sprintf("in%d.txt", i)}
		for j := i + 1; j <= i+2 && j < n; j++ {
			srcs = append(srcs, fmt.Sprintf(":t%d", j))
		}
		rules[i] = rule{name: fmt.Sprintf("t%d", i), class: "task", srcs: srcs, outs: []string{fmt.Sprintf("t%d.out", i)}}
	}
	return newMemSource(b, map[string]pkgSpec{"": {rules: rules}})
}

func TestEvalWide(t *testing.T) {
	got, err := run(t, wideSource(t, 1000), "deps(//:all)", "")
	if err != nil {
		t.Fatal(err)
	}
	// Every rule and its input; outputs are not dependencies of anything.
	if len(got) != 2000 {
		t.Errorf("deps(//:all) has %d targets, want 2000", len(got))
	}
}

func BenchmarkDepsAll20k(b *testing.B) {
	src := wideSource(b, 20000)
	e, err := Parse("deps(//:all)")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Eval(context.Background(), src, e, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRdeps20k(b *testing.B) {
	src := wideSource(b, 20000)
	e, err := Parse("rdeps(//:all, //:in19999.txt)")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Eval(context.Background(), src, e, ""); err != nil {
			b.Fatal(err)
		}
	}
}
