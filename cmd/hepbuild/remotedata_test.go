package main

import (
	"fmt"
	"hash/adler32"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hepbuild/hepbuild/internal/testserver"
	"github.com/hepbuild/hepbuild/storage"
)

// remoteStore is a real storage server for the remote data tests: URL is
// the folder the tests use, Dir the same folder on this machine's disk
// (the tests change files behind the server's back as a site would), and
// Reads counts the file reads the server logged (-1: it logs none).
type remoteStore struct {
	URL, Dir    string
	HasChecksum bool
	Reads       func() int
	Stop        func()
}

// remoteStores start each storage protocol hepbuild speaks, for real.
var remoteStores = map[string]func(t *testing.T) remoteStore{
	"xrootd": func(t *testing.T) remoteStore {
		s := testserver.StartXRootD(t, "xrootd.trace fs")
		return remoteStore{URL: "root://" + s.Addr + "//store", Dir: filepath.Join(s.Data, "store"), HasChecksum: true,
			Reads: func() int { return xrootdReads(t, s) }, Stop: s.Stop}
	},
	"xrootd-https": func(t *testing.T) remoteStore {
		s := testserver.StartXRootDHTTP(t)
		return remoteStore{URL: "http://" + s.HTTPAddr + "/store", Dir: filepath.Join(s.Data, "store"), HasChecksum: true,
			Reads: func() int { return -1 }, Stop: s.Stop}
	},
	"nginx": func(t *testing.T) remoteStore {
		s := testserver.StartNginxDAV(t)
		return remoteStore{URL: "http://" + s.Addr + "/store", Dir: filepath.Join(s.Data, "store"),
			Reads: func() int { return nginxReads(t, s) }, Stop: s.Stop}
	},
	"file": func(t *testing.T) remoteStore {
		dir := filepath.Join(t.TempDir(), "store")
		// hepbuild computes the adler32 of a local file itself.
		return remoteStore{URL: "file://" + dir, Dir: dir, HasChecksum: true, Reads: func() int { return -1 }, Stop: func() {}}
	},
}

// xrootdReads counts the files the server opened for reading
// ("xrootd.trace fs" logs "open r..." for each).
func xrootdReads(t *testing.T, s *testserver.XRootD) int {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Data), "xrd.log*"))
	n := 0
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		n += len(regexp.MustCompile(`Xrootd_Protocol: open r[a-z]* /store/`).FindAll(b, -1))
	}
	return n
}

// nginxReads counts the GET requests in nginx's access log.
func nginxReads(t *testing.T, s *testserver.NginxDAV) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(s.Dir, "access.log"))
	return strings.Count(string(b), `"GET /store/`)
}

// put writes a file into the store behind the server's back, readable and
// replaceable by the server's own user. A file that was there is replaced
// by a new one, as an upload replaces it: XRootD keeps a stored checksum
// with the file (an extended attribute), which an in-place rewrite within
// the same second would leave stale.
func (s remoteStore) put(t *testing.T, name, content string) {
	t.Helper()
	p := filepath.Join(s.Dir, name)
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o777)
		if d == s.Dir || len(d) <= len(s.Dir) {
			break
		}
	}
	os.Remove(p)
	if err := os.WriteFile(p, []byte(content), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o666)
}

const remoteDataBuild = `
remote_glob(name = "ds", url = "%[1]s/ds/*.root")
remote_files(name = "calib", urls = ["%[1]s/calib.txt"])
task(name = "count", srcs = [":ds"], outs = ["count.txt"], cmd = "cat $(SRCS) | wc -l > $@")
task(name = "calibrated", srcs = [":calib"], outs = ["calibrated.txt"], cmd = "tr a-z A-Z < $< > $@")
task(name = "per_file", srcs = ["//:ds"], outs = ["sizes.txt"], cmd = "wc -c $(SRCS) | sort > $@")
`

func adler(s string) string { return fmt.Sprintf("adler32:%08x", adler32.Checksum([]byte(s))) }

// TestRemoteData runs the life of remote inputs against every storage
// protocol: a build, a null build that reads nothing, a changed file that
// reruns exactly its readers, the same bytes again, a file whose bytes no
// longer match its checksum, a deleted file, and a server that is down.
func TestRemoteData(t *testing.T) {
	for _, name := range []string{"xrootd", "xrootd-https", "nginx", "file"} {
		t.Run(name, func(t *testing.T) {
			s := remoteStores[name](t)
			for i := 0; i < 4; i++ {
				s.put(t, fmt.Sprintf("ds/f%d.root", i), strings.Repeat(fmt.Sprintf("event %d\n", i), i+1))
			}
			s.put(t, "calib.txt", "scale 1.02\n")
			root, disk := clone(t, map[string]string{"BUILD": fmt.Sprintf(remoteDataBuild, s.URL)})
			// A bounded wait: a request the server leaves unanswered is
			// asked again after it (see exec/local's fetch).
			flags := []string{"//:all", "--disk-cache", disk, "--storage-timeout=15s"}

			r, ev := buildOutcomes(t, root, flags...)
			if got := len(ev["action_finished"]); got != 8 {
				t.Fatalf("first build finished %d actions, want 8 (5 downloads, 3 tasks)\n%s", got, r.stderr)
			}
			if got := outText(t, root, "count.txt"); strings.TrimSpace(got) != "10" {
				t.Errorf("count.txt = %q, want 10 lines", got)
			}
			if got := outText(t, root, "calibrated.txt"); got != "SCALE 1.02\n" {
				t.Errorf("calibrated.txt = %q", got)
			}
			lock, err := storage.LoadLock(filepath.Join(root, storage.LockName))
			if err != nil {
				t.Fatal(err)
			}
			id, ok := lock.File(s.URL + "/calib.txt")
			if !ok || id.Size != 11 {
				t.Fatalf("hepbuild.lock has %+v (%v) for calib.txt", id, ok)
			}
			if want := adler("scale 1.02\n"); s.HasChecksum && id.Checksum != want {
				t.Errorf("lock checksum %q, want the storage's %q", id.Checksum, want)
			}
			if !s.HasChecksum && id.Checksum != "" {
				t.Errorf("a storage without checksums gave %q", id.Checksum)
			}
			if !strings.Contains(r.stderr, "INFO: 5 remote files checked") {
				t.Errorf("no line saying what was checked:\n%s", r.stderr)
			}

			// A null build reads no file from storage.
			reads := s.Reads()
			r, ev = buildOutcomes(t, root, flags...)
			if got := len(ev["action_finished"]); got != 0 {
				t.Errorf("null build ran %d actions: %v", got, ev["action_finished"])
			}
			if s.Reads() != reads {
				t.Errorf("null build read files from storage: %d reads before, %d after", reads, s.Reads())
			}

			// A changed file reruns its download and its readers, nothing
			// else; explain says which file changed, and how.
			s.put(t, "ds/f2.root", "event 2 changed\n")
			if r := hepbuild(t, root, "explain", "//:ds", "--disk-cache", disk); !strings.Contains(r.stdout, "remote file changed on storage: "+s.URL+"/ds/f2.root size=24") {
				t.Errorf("explain after ds/f2.root changed:\n%s%s", r.stdout, r.stderr)
			}
			_, ev = buildOutcomes(t, root, flags...)
			if got, want := sortedCopy(ev["action_finished"]), []string{"//:count", "//:ds", "//:per_file"}; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("after changing ds/f2.root, ran %v, want %v", got, want)
			}

			// The same bytes written again: nothing that reads them runs.
			time.Sleep(1100 * time.Millisecond) // a new modification time, to the second
			s.put(t, "calib.txt", "scale 1.02\n")
			_, ev = buildOutcomes(t, root, flags...)
			for _, tgt := range ev["action_finished"] {
				if tgt != "//:calib" {
					t.Errorf("the same bytes again reran %s", tgt)
				}
			}

			if s.HasChecksum {
				// Bytes that no longer match the checksum storage and the
				// lock agree on (changed in place, size and time kept) are
				// refused when downloaded: with an empty cache and output tree.
				p := filepath.Join(s.Dir, "calib.txt")
				st, _ := os.Stat(p)
				if err := os.WriteFile(p, []byte("scale 9.99\n"), 0o666); err != nil {
					t.Fatal(err)
				}
				os.Chtimes(p, st.ModTime(), st.ModTime())
				if r := hepbuild(t, root, "clean"); r.code != 0 {
					t.Fatalf("clean: %s", r.stderr)
				}
				fresh := filepath.Join(t.TempDir(), "fresh")
				r := hepbuild(t, root, "//:calibrated", "--disk-cache", fresh, "--progress=plain")
				if r.code != 1 || !strings.Contains(r.stderr, "refused") || !strings.Contains(r.stderr, "calib.txt") {
					t.Errorf("a file not matching its checksum: exit %d, want 1 and a refusal naming it\n%s", r.code, r.stderr)
				}
				if _, err := os.Stat(filepath.Join(root, "hepbuild-out", "calib", "calib.txt")); err == nil {
					t.Error("the refused file is in the output tree")
				}
				if out, _ := os.ReadFile(filepath.Join(root, "hepbuild-out", "calibrated.txt")); strings.Contains(string(out), "9.99") {
					t.Error("an action read the refused bytes")
				}
				s.put(t, "calib.txt", "scale 1.02\n")
			}

			// A deleted file is an error naming the target and the URL.
			os.Remove(filepath.Join(s.Dir, "calib.txt"))
			r = hepbuild(t, root, flags...)
			if r.code != 1 || !strings.Contains(r.stderr, "//:calib") || !strings.Contains(r.stderr, s.URL+"/calib.txt") ||
				!strings.Contains(r.stderr, "BUILD:3:") {
				t.Errorf("deleted file: exit %d, want 1 and an error naming BUILD:3, //:calib and the URL\n%s", r.code, r.stderr)
			}

			// A server that is down: infrastructure, exit 3.
			if name != "file" {
				s.put(t, "calib.txt", "scale 1.02\n")
				s.Stop()
				r = hepbuild(t, root, append(flags, "--storage-timeout=5s")...)
				if r.code != 3 {
					t.Errorf("storage down: exit %d, want 3\n%s", r.code, r.stderr)
				}
			}
		})
	}
}

func outText(t *testing.T, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "hepbuild-out", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRemoteDataOffline: --offline builds from hepbuild.lock with storage
// gone, and names what the lock lacks.
func TestRemoteDataOffline(t *testing.T) {
	s := remoteStores["xrootd"](t)
	s.put(t, "ds/a.root", "a\n")
	s.put(t, "calib.txt", "c\n")
	root, disk := clone(t, map[string]string{"BUILD": fmt.Sprintf(remoteDataBuild, s.URL)})
	buildOutcomes(t, root, "//:all", "--disk-cache", disk)
	s.Stop()
	r, ev := buildOutcomes(t, root, "//:all", "--disk-cache", disk, "--offline")
	if len(ev["action_finished"]) != 0 || !strings.Contains(r.stderr, "(--offline)") {
		t.Errorf("offline build ran %v\n%s", ev["action_finished"], r.stderr)
	}
	if err := os.WriteFile(filepath.Join(root, "BUILD"), []byte(fmt.Sprintf(remoteDataBuild, s.URL)+
		fmt.Sprintf("remote_files(name = \"new\", urls = [\"%s/new.root\"])\n", s.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = hepbuild(t, root, "//:new", "--disk-cache", disk, "--offline")
	if r.code == 0 || !strings.Contains(r.stderr, "hepbuild fetch") {
		t.Errorf("a file not in the lock, offline: exit %d\n%s", r.code, r.stderr)
	}
}

// TestRemoteDataStream: an action given the URL reads the file from
// storage itself (xrdcp, in the linux sandbox with the network), and a
// change on storage reruns it although nothing was downloaded.
func TestRemoteDataStream(t *testing.T) {
	if _, err := os.Stat("/usr/bin/xrdcp"); err != nil {
		t.Fatal("xrdcp is missing: run .ci/services/xrootd.sh")
	}
	s := remoteStores["xrootd"](t)
	s.put(t, "big.root", "streamed bytes\n")
	build := fmt.Sprintf(`
remote_files(name = "big", urls = ["%s/big.root"], stream = True)
task(name = "head", srcs = [":big"], outs = ["head.txt"], cmd = "echo $(location :big) > $@; xrdcp -s $< - >> $@")
`, s.URL)
	root, disk := clone(t, map[string]string{"BUILD": build})
	reads := s.Reads()
	buildOutcomes(t, root, "//:head", "--disk-cache", disk)
	want := s.URL + "/big.root\nstreamed bytes\n"
	if got := outText(t, root, "head.txt"); got != want {
		t.Errorf("head.txt = %q, want %q", got, want)
	}
	if got := s.Reads() - reads; got != 1 {
		t.Errorf("the server opened the file %d times, want once (by xrdcp; hepbuild downloads nothing)", got)
	}
	if _, err := os.Stat(filepath.Join(root, "hepbuild-out", "big", "big.root")); err == nil {
		t.Error("a streamed file was downloaded")
	}
	s.put(t, "big.root", "streamed bytes, v2\n")
	_, ev := buildOutcomes(t, root, "//:head", "--disk-cache", disk)
	if got := sortedCopy(ev["action_finished"]); strings.Join(got, " ") != "//:big //:head" {
		t.Errorf("after the file changed on storage, ran %v", got)
	}
	r := hepbuild(t, root, "aquery", "//:head")
	if !strings.Contains(r.stdout, "requires-network") {
		t.Errorf("the reader of a streamed file is not tagged requires-network:\n%s", r.stdout)
	}
}

// TestExport: outputs go to storage under their package paths, verified;
// the second export copies nothing; a folder destination works too.
func TestExport(t *testing.T) {
	for _, name := range []string{"xrootd", "nginx", "file"} {
		t.Run(name, func(t *testing.T) {
			s := remoteStores[name](t)
			s.put(t, "export/.keep", "")
			root, disk := clone(t, map[string]string{
				"BUILD":          `task(name = "top", outs = ["top.txt"], cmd = "echo top > $@")`,
				"analysis/BUILD": `task(name = "cards", outs = ["cards/a.txt", "cards/b.txt"], cmd = "echo a > $(location cards/a.txt); echo b > $(location cards/b.txt)")`,
			})
			dest := s.URL + "/export/v1/"
			r := hepbuild(t, root, "export", "//:top", "//analysis:cards", dest, "--disk-cache", disk)
			if r.code != 0 {
				t.Fatalf("export: exit %d\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "copied 3 files") {
				t.Errorf("first export:\n%s", r.stdout)
			}
			for p, want := range map[string]string{"top.txt": "top\n", "analysis/cards/a.txt": "a\n", "analysis/cards/b.txt": "b\n"} {
				b, err := os.ReadFile(filepath.Join(s.Dir, "export", "v1", p))
				if err != nil || string(b) != want {
					t.Errorf("%s on storage: %q, %v", p, b, err)
				}
			}
			left, _ := filepath.Glob(filepath.Join(s.Dir, "export", "v1", "*", ".*"))
			if len(left) > 0 {
				t.Errorf("temporary files left on storage: %v", left)
			}
			r = hepbuild(t, root, "export", "//:top", "//analysis:cards", dest, "--disk-cache", disk)
			if r.code != 0 || !strings.Contains(r.stdout, "copied 0 files") || !strings.Contains(r.stdout, "3 already there") {
				t.Errorf("second export: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestFetchRefreshesTheLock: fetch records new files and drops files no
// target reads.
func TestFetchRefreshesTheLock(t *testing.T) {
	s := remoteStores["xrootd"](t)
	for i := 0; i < 3; i++ {
		s.put(t, fmt.Sprintf("ds/f%d.root", i), fmt.Sprint(i))
	}
	s.put(t, "calib.txt", "c")
	root, _ := clone(t, map[string]string{"BUILD": fmt.Sprintf(remoteDataBuild, s.URL)})
	r := hepbuild(t, root, "fetch")
	if r.code != 0 || !strings.Contains(r.stdout, "4 remote files (4 new, 0 changed)") {
		t.Fatalf("fetch: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	os.WriteFile(filepath.Join(root, "BUILD"), []byte(fmt.Sprintf(`remote_files(name = "calib", urls = ["%s/calib.txt"])`, s.URL)), 0o644)
	r = hepbuild(t, root, "fetch")
	lock, err := storage.LoadLock(filepath.Join(root, storage.LockName))
	if r.code != 0 || err != nil || lock.Len() != 1 {
		t.Errorf("fetch after dropping the glob: exit %d, %d files in the lock (%v)\n%s", r.code, lock.Len(), err, r.stderr)
	}
	b, _ := os.ReadFile(filepath.Join(root, storage.LockName))
	if strings.Contains(string(b), "ds/") {
		t.Errorf("the lock still lists the dropped glob:\n%s", b)
	}
}

// TestExportOddNames: an output's name is a file name, not a URL. Before
// export escaped it, x#1.txt and x#2.txt were both copied to "x" (the
// rest read as a fragment), y?z.txt to "y" and p%41.txt to "pA.txt", each
// "verified", and a DEST folder named a#b wrote to "a".
func TestExportOddNames(t *testing.T) {
	for _, name := range []string{"nginx", "file"} {
		t.Run(name, func(t *testing.T) {
			s := remoteStores[name](t)
			s.put(t, "export/.keep", "")
			outs := []string{"x#1.txt", "x#2.txt", "y?z.txt", "p%41.txt", "b c.txt"}
			root, disk := clone(t, map[string]string{
				"BUILD": `task(name = "top", outs = ["x#1.txt", "x#2.txt", "y?z.txt", "p%41.txt", "b c.txt"], cmd = "for o in $(OUTS); do echo \"$$o\" > \"$$o\"; done")`,
			})
			dests := map[string]string{s.URL + "/export/v1/": filepath.Join(s.Dir, "export", "v1")}
			if name == "file" {
				folder := filepath.Join(s.Dir, "export", "a#b")
				dests[folder] = folder
			}
			for dest, dir := range dests {
				r := hepbuild(t, root, "export", "//:top", dest, "--disk-cache", disk)
				if r.code != 0 || !strings.Contains(r.stdout, "copied 5 files") {
					t.Fatalf("export to %s: exit %d\n%s%s", dest, r.code, r.stdout, r.stderr)
				}
				ents, _ := os.ReadDir(dir)
				var got []string
				for _, e := range ents {
					got = append(got, e.Name())
				}
				if want := sortedCopy(outs); strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("export to %s wrote %q, want %q", dest, got, want)
				}
				for _, o := range outs {
					if b, err := os.ReadFile(filepath.Join(dir, o)); err != nil || string(b) != "hepbuild-out/"+o+"\n" {
						t.Errorf("%s on storage: %q, %v", o, b, err)
					}
				}
			}
		})
	}
}

// TestNoChecksumReplacedFileIsRefused: on storage that keeps no checksum
// (nginx) a file is its size and modification time. A file replaced by
// other bytes of the same size after the lock recorded it was downloaded
// and stored under the old identity, verified by its size alone, with
// --offline (which "verifies downloads against the lock") and when the
// file changes between validation and download alike. The download is
// now refused unless storage still reports the recorded time.
func TestNoChecksumReplacedFileIsRefused(t *testing.T) {
	s := remoteStores["nginx"](t)
	s.put(t, "calib.txt", "scale 1.02\n")
	build := fmt.Sprintf(`remote_files(name = "calib", urls = ["%s/calib.txt"])
task(name = "calibrated", srcs = [":calib"], outs = ["calibrated.txt"], cmd = "cat $< > $@")
`, s.URL)
	root, disk := clone(t, map[string]string{"BUILD": build})
	if r := hepbuild(t, root, "fetch"); r.code != 0 {
		t.Fatalf("fetch: %s", r.stderr)
	}
	time.Sleep(1100 * time.Millisecond) // a new modification time, to the second
	s.put(t, "calib.txt", "scale 9.99\n")
	r := hepbuild(t, root, "//:calibrated", "--disk-cache", disk, "--offline", "--progress=plain")
	if r.code != 1 || !strings.Contains(r.stderr, "calib.txt") || !strings.Contains(r.stderr, "hepbuild fetch") {
		t.Errorf("offline, the file replaced on storage: exit %d, want 1 and a refusal naming it\n%s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(root, "hepbuild-out", "calib", "calib.txt")); err == nil {
		t.Errorf("the replaced file's bytes are in the output tree: %q", b)
	}
	if b, err := os.ReadFile(filepath.Join(root, "hepbuild-out", "calibrated.txt")); err == nil {
		t.Errorf("an action read the replaced bytes: %q", b)
	}
	// Online, the new identity is recorded and the new bytes are right.
	r = hepbuild(t, root, "//:calibrated", "--disk-cache", disk)
	if got := outText(t, root, "calibrated.txt"); r.code != 0 || got != "scale 9.99\n" {
		t.Errorf("online after the replacement: exit %d, calibrated.txt %q\n%s", r.code, got, r.stderr)
	}
}

// TestExportRefusesOwnFolders: DEST/<package>/<file> inside hepbuild's
// output tree is another target's output path. Before, export to
// hepbuild-out/analysis replaced //analysis:top's top.txt with //:top's
// (until a build noticed); to the output base it wrote among logs; to a
// file it failed as an infrastructure error (exit 3); and an absolute
// DEST with ".." in it was refused as a URL with a .. segment.
func TestExportRefusesOwnFolders(t *testing.T) {
	root, disk := clone(t, map[string]string{
		"BUILD":          `task(name = "top", outs = ["top.txt"], cmd = "echo root top > $@")`,
		"analysis/BUILD": `task(name = "top", outs = ["top.txt"], cmd = "echo analysis top > $@")`,
	})
	if r := hepbuild(t, root, "//:all", "//analysis:all", "--disk-cache", disk); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	base, err := filepath.EvalSymlinks(filepath.Join(root, "hepbuild-out"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, dest := range []string{"hepbuild-out/analysis", "hepbuild-out", filepath.Join(root, "hepbuild-out", "analysis"),
		filepath.Join(filepath.Dir(base), "logs"), base, "file://" + base + "/x", file} {
		r := hepbuild(t, root, "export", "--disk-cache", disk, "//:top", dest)
		if r.code != 2 {
			t.Errorf("export to %s: exit %d, want 2\n%s%s", dest, r.code, r.stdout, r.stderr)
		}
	}
	if got := outText(t, root, "analysis/top.txt"); got != "analysis top\n" {
		t.Errorf("//analysis:top's output is now %q", got)
	}
	mine := t.TempDir()
	if r := hepbuild(t, root, "export", "--disk-cache", disk, "//:top", mine+"/sub/../v1"); r.code != 0 {
		t.Errorf("export to a folder spelt with ..: exit %d\n%s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(mine, "v1", "top.txt")); err != nil || string(b) != "root top\n" {
		t.Errorf("v1/top.txt: %q, %v", b, err)
	}
}

// TestFetchErrorHidesQuery: a failed download's message names the URL
// without its query, as every other storage message does (a query may
// hold a credential: a signature, an S3 or SAS token). Before, "could not
// run Fetch: downloading http://...?eos.app=..." printed it whole.
func TestFetchErrorHidesQuery(t *testing.T) {
	const u = "http://127.0.0.1:1/store/calib.txt?eos.app=QSECRET77"
	root, disk := clone(t, map[string]string{"BUILD": fmt.Sprintf(`remote_files(name = "q", urls = [%q])`, u)})
	lock, err := storage.LoadLock(filepath.Join(root, storage.LockName))
	if err != nil {
		t.Fatal(err)
	}
	lock.SetFile(u, storage.Identity{Size: 11, ModTime: 1796500000})
	if _, err := lock.Save(); err != nil {
		t.Fatal(err)
	}
	r := hepbuild(t, root, "//:q", "--disk-cache", disk, "--offline", "--storage-timeout=5s", "--progress=plain")
	if r.code != 3 || strings.Contains(r.stdout+r.stderr, "QSECRET77") || !strings.Contains(r.stderr, "127.0.0.1:1/store/calib.txt") {
		t.Errorf("download from a server that is down: exit %d, want 3 and a message naming the URL without its query\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestFetchKeepsManualTargets: hepbuild fetch without targets records the
// remote files of targets tagged manual too. Before, it dropped them from
// the lock (manual targets are not part of //...), so an --offline build
// of such a target failed with "run hepbuild fetch", and running it
// dropped them again.
func TestFetchKeepsManualTargets(t *testing.T) {
	s := remoteStores["file"](t)
	s.put(t, "big/a.root", "a\n")
	s.put(t, "calib.txt", "c\n")
	root, disk := clone(t, map[string]string{"BUILD": fmt.Sprintf(`
remote_glob(name = "big", url = "%[1]s/big/*.root", tags = ["manual"])
remote_files(name = "calib", urls = ["%[1]s/calib.txt"])
task(name = "slow", srcs = [":big"], outs = ["slow.txt"], cmd = "cat $(SRCS) > $@", tags = ["manual"])
`, s.URL)})
	if r := hepbuild(t, root, "//:slow", "--disk-cache", disk); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	if r := hepbuild(t, root, "fetch"); r.code != 0 || !strings.Contains(r.stdout, "2 remote files") {
		t.Errorf("fetch: exit %d, want 2 remote files recorded\n%s%s", r.code, r.stdout, r.stderr)
	}
	lock, err := storage.LoadLock(filepath.Join(root, storage.LockName))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lock.File(s.URL + "/big/a.root"); !ok {
		t.Error("fetch dropped the manual target's file from the lock")
	}
	if _, ok := lock.Glob(s.URL + "/big/*.root"); !ok {
		t.Error("fetch dropped the manual target's glob from the lock")
	}
	if r := hepbuild(t, root, "//:slow", "--disk-cache", disk, "--offline"); r.code != 0 {
		t.Errorf("offline build of the manual target after fetch: exit %d\n%s", r.code, r.stderr)
	}
}

// TestStorageCredentialsOnlyWhenUsed: a token that cannot be read is an
// error for builds that reach storage, and none for those that do not.
func TestStorageCredentialsOnlyWhenUsed(t *testing.T) {
	t.Setenv("BEARER_TOKEN_FILE", filepath.Join(t.TempDir(), "no-such-token"))
	root, disk := clone(t, map[string]string{"BUILD": `task(name = "t", outs = ["t.txt"], cmd = "echo t > $@")`})
	if r := hepbuild(t, root, "//:t", "--disk-cache", disk); r.code != 0 {
		t.Errorf("a build without remote files failed on the storage token: exit %d\n%s", r.code, r.stderr)
	}
	s := remoteStores["file"](t)
	s.put(t, "a.txt", "a\n")
	root, disk = clone(t, map[string]string{"BUILD": fmt.Sprintf(`remote_files(name = "a", urls = ["%s/a.txt"])`, s.URL)})
	if r := hepbuild(t, root, "//:a", "--disk-cache", disk); r.code != 2 || !strings.Contains(r.stderr, "$BEARER_TOKEN_FILE") {
		t.Errorf("a build reading storage with an unreadable token: exit %d, want 2 naming $BEARER_TOKEN_FILE\n%s", r.code, r.stderr)
	}
}
