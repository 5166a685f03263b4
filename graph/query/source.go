package query

import (
	"context"
	"runtime"
	"sync"

	"github.com/hepbuild/hepbuild/graph"
)

// memoSource loads each package at most once per evaluation, and lets
// independent packages load concurrently. Safe for concurrent use.
type memoSource struct {
	src graph.PackageSource

	mu       sync.Mutex
	pkgs     map[pkgKey]*pkgEntry
	beneaths map[pkgKey]*beneathEntry
}

type pkgKey struct{ repo, pkg string }

type pkgEntry struct {
	ready chan struct{}
	pkg   *graph.Package
	err   error
}

type beneathEntry struct {
	ready chan struct{}
	names []string
	err   error
}

func newMemoSource(src graph.PackageSource) *memoSource {
	return &memoSource{src: src, pkgs: map[pkgKey]*pkgEntry{}, beneaths: map[pkgKey]*beneathEntry{}}
}

// Package implements graph.PackageSource.
func (m *memoSource) Package(repo, pkg string) (*graph.Package, error) {
	k := pkgKey{repo, pkg}
	m.mu.Lock()
	e, ok := m.pkgs[k]
	if ok {
		m.mu.Unlock()
		<-e.ready
		return e.pkg, e.err
	}
	e = &pkgEntry{ready: make(chan struct{})}
	m.pkgs[k] = e
	m.mu.Unlock()
	e.pkg, e.err = m.src.Package(repo, pkg)
	close(e.ready)
	return e.pkg, e.err
}

// loaded reports whether the package was asked for already.
func (m *memoSource) loaded(k pkgKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.pkgs[k]
	return ok
}

// PackagesBeneath implements graph.PackageSource.
func (m *memoSource) PackagesBeneath(repo, prefix string) ([]string, error) {
	k := pkgKey{repo, prefix}
	m.mu.Lock()
	e, ok := m.beneaths[k]
	if ok {
		m.mu.Unlock()
		<-e.ready
		return e.names, e.err
	}
	e = &beneathEntry{ready: make(chan struct{})}
	m.beneaths[k] = e
	m.mu.Unlock()
	e.names, e.err = m.src.PackagesBeneath(repo, prefix)
	close(e.ready)
	return e.names, e.err
}

// Target implements graph.TargetResolver: declared targets from the
// memoised package, anything else as the wrapped source resolves it.
func (m *memoSource) Target(l graph.Label) (*graph.Target, error) {
	p, err := m.Package(l.Repo, l.Pkg)
	if err != nil {
		return nil, err
	}
	if t := p.Targets[l.Name]; t != nil {
		return t, nil
	}
	if r, ok := m.src.(graph.TargetResolver); ok {
		return r.Target(l)
	}
	return graph.LookupTarget(declaredOnly{m}, l)
}

// declaredOnly hides memoSource's TargetResolver from graph.LookupTarget.
type declaredOnly struct{ m *memoSource }

func (d declaredOnly) Package(repo, pkg string) (*graph.Package, error) {
	return d.m.Package(repo, pkg)
}

func (d declaredOnly) PackagesBeneath(repo, prefix string) ([]string, error) {
	return d.m.PackagesBeneath(repo, prefix)
}

// prefetch loads the packages of labels that are not loaded yet,
// concurrently; errors surface later, when the targets are looked up.
func (m *memoSource) prefetch(ctx context.Context, labels []graph.Label) {
	var keys []pkgKey
	seen := map[pkgKey]bool{}
	for _, l := range labels {
		k := pkgKey{l.Repo, l.Pkg}
		if !seen[k] && !m.loaded(k) {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if len(keys) < 2 {
		return // the lookup loads it; a goroutine would only add latency
	}
	sem := make(chan struct{}, runtime.GOMAXPROCS(0)*2)
	var wg sync.WaitGroup
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, _ = m.Package(k.repo, k.pkg) // an error is reported by the lookup that follows
		})
	}
	wg.Wait()
}
