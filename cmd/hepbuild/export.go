package main

import (
	"errors"
	"fmt"
	"hash/adler32"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/hepbuild/hepbuild/exec"
	hstarlark "github.com/hepbuild/hepbuild/starlark"
	"github.com/hepbuild/hepbuild/storage"
)

// ExportCmd copies built outputs to storage.
type ExportCmd struct {
	BuildFlags
	DryRun bool     `name:"dry-run" help:"Say what would be copied, copy nothing."`
	Args   []string `arg:"" name:"target... dest" help:"Targets to build and export, then where to: root://host//path/, davs://host/path/, https://..., file:///path/ or a folder."`
}

// Run builds the targets, then copies each of their outputs to
// DEST/<package>/<file>, skipping files storage already holds with the
// same checksum and verifying each copy by its checksum.
func (c *ExportCmd) Run(g *Globals, e *env) error {
	if len(c.Args) < 2 {
		return badInput("export: give one or more targets and then where to export them, e.g. hepbuild export //analysis:datacards root://eos.example//eos/user/a/ana/")
	}
	targets, dest := c.Args[:len(c.Args)-1], c.Args[len(c.Args)-1]
	destURL, err := exportDest(dest, e.cwd)
	if err != nil {
		return err
	}
	build := &BuildCmd{BuildFlags: c.BuildFlags, Targets: targets}
	if !c.DryRun {
		if err := build.Run(g, e); err != nil {
			return err
		}
	}
	// The outputs as the build left them: analysed again, which the
	// null build above skipped, so checked against storage again too.
	f := c.AnalysisFlags
	f.lenient = true
	s, err := analyse(g, &f, e, targets, false)
	if err != nil {
		return err
	}
	defer s.close()
	if err := checkExportFolder(destURL, s.w.root); err != nil {
		return err
	}
	var files []exportFile
	for _, r := range s.roots {
		local := filepath.Join(s.w.root, filepath.FromSlash(r.Path))
		rel := strings.TrimPrefix(r.Path, exec.OutDir+"/")
		if r.URL != "" {
			continue // a file streamed from storage is there already
		}
		err := filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			if !d.Type().IsRegular() {
				return fmt.Errorf("%s is not a regular file: export copies files only", p)
			}
			sub, _ := filepath.Rel(local, p)
			name := rel
			if sub != "." {
				name = rel + "/" + filepath.ToSlash(sub)
			}
			files = append(files, exportFile{local: p, name: name})
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			return badInput("export: %s is not in the output tree (built with --remote-download-outputs=minimal?): build it with --remote-download-outputs=toplevel", r.Path)
		}
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	opts, err := c.storageOptions()
	if err != nil {
		return err
	}
	pool := storage.NewPool(opts, storageOpeners)
	defer pool.Close()
	copied, skipped := 0, 0
	var bytes int64
	for _, f := range files {
		// f.name is a file name, not a URL: "#", "?" and "%" in it
		// would otherwise name another file (x#1.txt and x#2.txt both x).
		u := destURL + escapePath(f.name)
		did, n, err := exportOne(e, pool, f.local, f.name, u, c.DryRun)
		if err != nil {
			return fmt.Errorf("export %s to %s: %w", f.name, storage.Redact(u), err)
		}
		if did {
			copied++
			bytes += n
		} else {
			skipped++
		}
	}
	verb := "copied"
	if c.DryRun {
		verb = "would copy"
	}
	fmt.Fprintf(e.stdout, "hepbuild: export to %s: %s %s (%d bytes), %d already there with the same checksum\n",
		storage.Redact(destURL), verb, count(copied, "file", "files"), bytes, skipped)
	return nil
}

type exportFile struct{ local, name string }

// exportDest turns DEST into a URL ending in "/": a URL as given, or a
// folder as file://.
func exportDest(dest, cwd string) (string, error) {
	if !strings.Contains(dest, "://") {
		abs := filepath.Clean(dest)
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(cwd, dest)
		}
		// Escaped, so that a folder named a#b or 50% is that folder.
		dest = (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	}
	if err := checkExportURL(dest); err != nil {
		return "", badInput("export: %v", err)
	}
	if !strings.HasSuffix(dest, "/") {
		dest += "/"
	}
	return dest, nil
}

// checkExportFolder refuses a folder DEST that is a file, or that is in
// hepbuild's output tree or output base: export would replace outputs of
// other targets there (DEST/<package>/<file> is another package's output
// path), behind the build's back.
func checkExportFolder(destURL, root string) error {
	u, err := url.Parse(destURL)
	if err != nil || !strings.EqualFold(u.Scheme, "file") {
		return nil
	}
	dest := resolveExisting(filepath.Clean(filepath.FromSlash(u.Path)))
	if fi, err := os.Stat(dest); err == nil && !fi.IsDir() {
		return badInput("export: %s is a file: give a folder", dest)
	}
	out := resolveExisting(filepath.Join(root, exec.OutDir))
	own := []string{out}
	if base := filepath.Dir(out); fileExists(filepath.Join(base, exec.OutputBaseMarker)) {
		own = append(own, base)
	}
	for _, d := range own {
		if within(dest, d) {
			return badInput("export: %s is inside hepbuild's own folder %s, where it would replace other targets' outputs: export to a folder of your own", dest, d)
		}
	}
	return nil
}

// escapePath escapes each segment of the slash-separated path p for a URL.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func checkExportURL(dest string) error {
	return hstarlark.CheckRemoteURL(strings.TrimRight(dest, "/") + "/x")
}

// exportOne copies one file unless storage holds it with the same size
// and checksum, then verifies the copy: the checksum storage computes
// where it keeps one, else the size.
func exportOne(e *env, pool *storage.Pool, local, name, u string, dryRun bool) (bool, int64, error) {
	sum, size, err := adler32File(local)
	if err != nil {
		return false, 0, err
	}
	c, err := pool.Client(u)
	if err != nil {
		return false, 0, err
	}
	st, err := c.Stat(e.ctx, u)
	switch {
	case err == nil && !st.Dir && st.Size == size:
		theirs, _, err := remoteAdler32(e, c, u)
		if err == nil && theirs == sum {
			return false, size, nil
		}
	case err == nil && st.Dir:
		return false, 0, fmt.Errorf("a folder is there")
	case err != nil && !errors.Is(err, storage.ErrNotExist):
		return false, 0, err
	}
	if dryRun {
		fmt.Fprintf(e.stdout, "would copy %s -> %s\n", name, storage.Redact(u))
		return true, size, nil
	}
	f, err := os.Open(local)
	if err != nil {
		return false, 0, err
	}
	defer f.Close()
	if err := c.Put(e.ctx, u, io.LimitReader(f, size), size); err != nil {
		return false, 0, err
	}
	theirs, how, err := remoteAdler32(e, c, u)
	if err != nil {
		return false, 0, fmt.Errorf("verifying the copy: %w", err)
	}
	if theirs != sum {
		return false, 0, fmt.Errorf("%w: the copy has %s, the file %s", storage.ErrChecksumMismatch, theirs, sum)
	}
	fmt.Fprintf(e.stdout, "copied %s -> %s (%d bytes, %s)\n", name, storage.Redact(u), size, how)
	return true, size, nil
}

func adler32File(p string) (storage.Checksum, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return storage.Checksum{}, 0, err
	}
	defer f.Close()
	h := adler32.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return storage.Checksum{}, 0, err
	}
	return storage.Adler32(h), n, nil
}

// remoteAdler32 is the adler32 of the file at u: the one storage keeps,
// or, where it keeps none, computed by reading the file back.
func remoteAdler32(e *env, c storage.Client, u string) (storage.Checksum, string, error) {
	sum, err := c.Checksum(e.ctx, u)
	if err == nil {
		return sum, "adler32 verified", nil
	}
	if !errors.Is(err, storage.ErrNoChecksum) {
		return storage.Checksum{}, "", err
	}
	r, err := c.Open(e.ctx, u)
	if err != nil {
		return storage.Checksum{}, "", err
	}
	defer r.Close()
	h := adler32.New()
	if _, err := io.Copy(h, r); err != nil {
		return storage.Checksum{}, "", err
	}
	return storage.Adler32(h), "adler32 verified by reading the copy back; the storage keeps no checksum", nil
}
