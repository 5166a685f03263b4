package exec

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hepbuild/hepbuild/cache"
)

// Files of the output base. The version in the names lets a format change
// start afresh instead of misreading old files.
const (
	journalFile = "journal.v1"
	explainFile = "explain.v1.jsonl"
	lockFile    = "lock"
)

// Journal is the output base's memory of earlier builds: for every output
// path, the key of the action that last made it successfully, the output's
// digest and its stat (size, mtime, inode). An output whose journal entry has
// the action's current key and whose stat is unchanged is up to date, which
// makes a null build a few lstat calls and map lookups per action.
//
// The journal file is append-only while building, one checksummed line per
// change, so a killed build keeps what it completed and a torn last line is
// ignored; Close compacts it. An output is forgotten before it is touched and
// recorded only once it is complete and stored. Lines reach the file in
// batches (see append).
//
// Beside it, the explain log keeps for every action what it ran with
// (inputs, argv, env, environment) for `hepbuild explain` (see Previous).
//
// A Journal is safe for concurrent use. Only one process may use an output
// base at a time: hold LockOutputBase while the journal is open.
type Journal struct {
	dir string

	mu      sync.Mutex
	outputs map[string]outputRecord
	// keys holds, by output path, the key an action with a fingerprint
	// had when its output was recorded, for paths whose output is gone:
	// hepbuild clean removed it. See keyMemo.
	keys      map[string]keyMemo
	lines     int // complete lines in the journal file
	appended  int // lines appended by this process
	f         *os.File
	needNL    bool // the file ends in a torn line
	xf        *os.File
	xNeedNL   bool
	xAppended int
	xSize     int64 // bytes in the explain log when opened
	xBytes    int64 // bytes appended to it by this process
	// xBuf holds explain records not yet written (xPending of them):
	// they go to the log in batches of explainBatch bytes.
	xBuf     []byte
	xPending int
	// buf holds journal lines not yet written (see append); timer says
	// whether a flush of both buffers is due (see flushSoon).
	buf      []byte
	timer    bool
	err      error // first write error, reported by Close
	prev     map[string]*ActionRecord
	closed   bool
	done     chan struct{} // closed when Close is done
	closeErr error         // what Close returns
}

// outputRecord is the journal's entry for one output path.
type outputRecord struct {
	Key cache.Digest // of the action that made it
	// Fingerprint is the action's fingerprint that led to Key (see
	// fingerprint), or "" when not known: with it, an up-to-date check needs
	// no key computation.
	Fingerprint string
	Digest      cache.Digest // of the file's content (a listing digest for folders)
	Size        int64
	MTime       int64 // nanoseconds
	Inode       uint64
	// CTime (nanoseconds) catches an edit that restores size and mtime.
	// The linux sandbox's hard links change it too; the runner then
	// verifies the content and records the new one (see inputDigests.changed).
	CTime int64
	// Remote says that the output exists only in the cache: its result was
	// restored without its bytes (see DownloadMode), and nothing is at its
	// path. Executable is its mode then, for the keys of its dependents;
	// the stat fields are unset.
	Remote     bool
	Executable bool
}

// keyMemo is what the journal keeps of an output record when the output
// tree is removed: that the action with this fingerprint has this key.
// Equal fingerprints imply equal keys (see fingerprint), so it stays true
// whatever happens to the file; it vouches for no file at the path. It
// spares a build after clean computing the key of every action it
// restores.
type keyMemo struct {
	Key         cache.Digest
	Fingerprint string
}

// sameStat reports whether the file looks untouched since it was recorded.
func (o outputRecord) sameStat(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && !o.Remote && fi.Mode().IsRegular() && fi.Size() == o.Size &&
		fi.ModTime().UnixNano() == o.MTime && uint64(st.Ino) == o.Inode &&
		cache.CtimeNano(st) == o.CTime
}

func statRecord(key cache.Digest, fp string, d cache.Digest, fi fs.FileInfo) outputRecord {
	rec := outputRecord{Key: key, Fingerprint: fp, Digest: d, Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		rec.Inode = uint64(st.Ino)
		rec.CTime = cache.CtimeNano(st)
	}
	return rec
}

// OpenJournal loads the journal of the output base, or starts an empty one.
// Corrupt or torn lines are skipped.
func OpenJournal(outputBase string) (*Journal, error) {
	b, err := os.ReadFile(filepath.Join(outputBase, journalFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading journal: %w", err)
	}
	// The map is made as large as the outputs it will hold, about: every
	// "d" line drops an output that an earlier line recorded. Growing it
	// line by line was half the time of loading.
	lines := bytes.Count(b, []byte("\n"))
	forgotten := bytes.Count(b, []byte("\nd\t"))
	if bytes.HasPrefix(b, []byte("d\t")) {
		forgotten++
	}
	memos := bytes.Count(b, []byte("\nk\t"))
	if bytes.HasPrefix(b, []byte("k\t")) {
		memos++
	}
	j := &Journal{dir: outputBase, outputs: make(map[string]outputRecord, max(lines-2*forgotten-memos, 0))}
	if memos > 0 {
		j.keys = make(map[string]keyMemo, memos)
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			j.needNL = true // torn by a killed build
			break
		}
		line := b[:i]
		b = b[i+1:]
		j.lines++
		j.apply(line)
	}
	if fi, err := os.Stat(filepath.Join(outputBase, explainFile)); err == nil && fi.Size() > 0 {
		j.xSize = fi.Size()
		j.xNeedNL = lastByte(filepath.Join(outputBase, explainFile)) != '\n'
	}
	return j, nil
}

func lastByte(path string) byte {
	f, err := os.Open(path)
	if err != nil {
		return '\n'
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.Seek(-1, io.SeekEnd); err != nil {
		return '\n'
	}
	if _, err := f.Read(b[:]); err != nil {
		return '\n'
	}
	return b[0]
}

// apply parses one journal line into the map; a bad line is ignored.
//
// Lines are tab-separated: "o", path, key, digest, size, mtime, inode, the
// action's fingerprint (possibly empty) and ctime for a recorded output
// (older lines lack the last one or two); "r", path, key, digest,
// executable ("1" or "0") and fingerprint for an output kept only in the
// cache (see outputRecord.Remote); "d", path for a forgotten one; "k",
// path, key, fingerprint for the key memo of a removed one (see
// keyMemo); then a
// CRC-32 (hex) of everything before the last tab. Readers ignore types
// they do not know: an "r" line always follows a "d" line for its path,
// so an older hepbuild sees the output as never made, and makes it.
func (j *Journal) apply(line []byte) {
	k := bytes.LastIndexByte(line, '\t')
	if k < 0 {
		return
	}
	sum, err := strconv.ParseUint(string(line[k+1:]), 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE(line[:k]) {
		return
	}
	// The fields, without strings.Split's slice: at most nine are valid.
	var fields [10]string
	f := fields[:0]
	for rest := string(line[:k]); len(f) < len(fields); {
		i := strings.IndexByte(rest, '\t')
		if i < 0 {
			f = append(f, rest)
			break
		}
		f = append(f, rest[:i])
		rest = rest[i+1:]
	}
	if len(f) < 2 || len(f) == len(fields) {
		return
	}
	path := f[1]
	if strings.HasPrefix(path, `"`) {
		if path, err = strconv.Unquote(path); err != nil {
			return
		}
	}
	switch {
	case f[0] == "d" && len(f) == 2:
		delete(j.outputs, path)
	case f[0] == "k" && len(f) == 4 && len(f[3]) == 64:
		key, ok := parseDigestFast(f[2])
		if !ok {
			return
		}
		if j.keys == nil {
			j.keys = map[string]keyMemo{}
		}
		j.keys[path] = keyMemo{Key: key, Fingerprint: f[3]}
	case f[0] == "o" && len(f) >= 7 && len(f) <= 9:
		key, ok1 := parseDigestFast(f[2])
		d, ok2 := parseDigestFast(f[3])
		size, err1 := strconv.ParseInt(f[4], 10, 64)
		mtime, err2 := strconv.ParseInt(f[5], 10, 64)
		ino, err3 := strconv.ParseUint(f[6], 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || err3 != nil {
			return
		}
		rec := outputRecord{Key: key, Digest: d, Size: size, MTime: mtime, Inode: ino}
		if len(f) >= 8 {
			rec.Fingerprint = f[7]
		}
		if len(f) == 9 {
			// Lines written before ctime was recorded lack it: their
			// files are verified by content once and recorded again.
			if rec.CTime, err = strconv.ParseInt(f[8], 10, 64); err != nil {
				return
			}
		}
		j.outputs[path] = rec
		delete(j.keys, path)
	case f[0] == "r" && len(f) == 6 && (f[4] == "0" || f[4] == "1"):
		key, ok1 := parseDigestFast(f[2])
		d, ok2 := parseDigestFast(f[3])
		if !ok1 || !ok2 {
			return
		}
		j.outputs[path] = outputRecord{Key: key, Digest: d, Fingerprint: f[5], Remote: true, Executable: f[4] == "1"}
		delete(j.keys, path)
	}
}

// parseDigestFast parses "hash/size" from a checksummed line, without
// cache.ParseDigest's hex check, which would dominate loading.
func parseDigestFast(s string) (cache.Digest, bool) {
	h, sz, ok := strings.Cut(s, "/")
	if !ok || len(h) != 64 {
		return cache.Digest{}, false
	}
	n, err := strconv.ParseInt(sz, 10, 64)
	if err != nil {
		return cache.Digest{}, false
	}
	return cache.Digest{Hash: h, Size: n}, true
}

func quotePath(p string) string {
	if strings.ContainsAny(p, "\t\n\r\\\"") {
		return strconv.Quote(p)
	}
	return p
}

// appendChecksum ends the line that starts at b[start:] with its
// checksum and a newline.
func appendChecksum(b []byte, start int) []byte {
	sum := crc32.ChecksumIEEE(b[start:])
	b = append(b, '\t')
	b = strconv.AppendUint(b, uint64(sum), 16)
	return append(b, '\n')
}

// output returns the record of an output path.
func (j *Journal) output(path string) (outputRecord, bool) {
	j.mu.Lock()
	o, ok := j.outputs[path]
	j.mu.Unlock()
	return o, ok
}

// recordedKey returns the key the journal knows for the action with
// fingerprint fp that makes the output path: from the output's record,
// or from its key memo once it was removed.
func (j *Journal) recordedKey(path, fp string) (cache.Digest, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if o, ok := j.outputs[path]; ok {
		return o.Key, o.Fingerprint == fp
	}
	m, ok := j.keys[path]
	return m.Key, ok && m.Fingerprint == fp
}

// record notes that the output at path, now described by fi, was made by
// the action with the key and fingerprint ("" when unknown).
func (j *Journal) record(path string, key cache.Digest, fp string, d cache.Digest, fi fs.FileInfo) {
	o := statRecord(key, fp, d, fi)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.outputs[path] = o
	delete(j.keys, path)
	if j.writable() {
		j.buf = appendRecordLine(j.buf, path, o)
		j.appendedLines(1)
	}
}

// recordRemote notes that the output at path, made by the action with the
// key and fingerprint, exists only in the cache, as the blob d. The caller
// forgot the path first (see apply) and removed whatever was there.
func (j *Journal) recordRemote(path string, key cache.Digest, fp string, d cache.Digest, executable bool) {
	o := outputRecord{Key: key, Fingerprint: fp, Digest: d, Remote: true, Executable: executable}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.outputs[path] = o
	delete(j.keys, path)
	if j.writable() {
		j.buf = appendRecordLine(j.buf, path, o)
		j.appendedLines(1)
	}
}

// RemoteOnly reports whether the journal records the output at path as
// kept only in the cache, not in the output tree.
func (j *Journal) RemoteOnly(path string) bool {
	o, ok := j.output(path)
	return ok && o.Remote
}

// ForgetRemoteOnly drops the records of those paths that are kept only in
// the cache (all of them when all is true), so that the next build restores
// or makes them again, and returns how many it dropped. hepbuild clean
// uses it: an output it removes must not stay behind in the journal.
func (j *Journal) ForgetRemoteOnly(paths []string, all bool) int {
	j.mu.Lock()
	if all {
		paths = paths[:0:0]
		for p, o := range j.outputs {
			if o.Remote {
				paths = append(paths, p)
			}
		}
		sort.Strings(paths)
	}
	var drop []string
	for _, p := range paths {
		if o, ok := j.outputs[p]; ok && o.Remote {
			drop = append(drop, p)
		}
	}
	j.mu.Unlock()
	j.forget(drop)
	return len(drop)
}

// ForgetAll drops every output record, on file at once: hepbuild clean
// removed the output tree they describe. A build after clean then finds no
// record to check its outputs against (each check would only find the
// output gone). What a record said of its action's key stays, as a key
// memo: that build does not compute the keys of the actions it restores.
func (j *Journal) ForgetAll() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for p, o := range j.outputs {
		if o.Fingerprint != "" {
			if j.keys == nil {
				j.keys = make(map[string]keyMemo, len(j.outputs))
			}
			j.keys[p] = keyMemo{Key: o.Key, Fingerprint: o.Fingerprint}
		}
	}
	j.outputs = map[string]outputRecord{}
	j.buf = j.buf[:0]
	if j.f != nil {
		// Appends go to the rewritten file from here on.
		j.f.Close()
		j.f = nil
	}
	if err := writeFileAtomic(filepath.Join(j.dir, journalFile), j.compactedJournal()); err != nil {
		return fmt.Errorf("compacting journal: %w", err)
	}
	j.lines, j.appended, j.needNL = 0, 0, false
	return nil
}

// forgetKey drops every output that the action with the key made: when one
// of them is gone from the cache, the next build makes them all again.
func (j *Journal) forgetKey(key cache.Digest) {
	j.mu.Lock()
	var paths []string
	for p, o := range j.outputs {
		if o.Key == key {
			paths = append(paths, p)
		}
	}
	j.mu.Unlock()
	sort.Strings(paths)
	j.forget(paths)
}

// forget drops outputs that are about to be replaced.
func (j *Journal) forget(paths []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, p := range paths {
		if _, ok := j.outputs[p]; ok {
			delete(j.outputs, p)
			if j.writable() {
				start := len(j.buf)
				j.buf = append(append(j.buf, "d\t"...), quotePath(p)...)
				j.buf = appendChecksum(j.buf, start)
				n++
			}
		}
	}
	if n > 0 {
		j.appendedLines(n)
	}
}

// recordAll is record for every output of an action, under one lock.
func (j *Journal) recordAll(paths []string, recs []outputRecord) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, p := range paths {
		j.outputs[p] = recs[i]
		delete(j.keys, p)
		if j.writable() {
			j.buf = appendRecordLine(j.buf, p, recs[i])
		}
	}
	if j.writable() {
		j.appendedLines(len(paths))
	}
}

// writable says whether lines may still be appended to j.buf (see
// appendedLines); j.mu is held.
func (j *Journal) writable() bool { return !j.closed && j.err == nil }

// appendedLines takes note of n lines just appended to j.buf, straight
// into the buffer without a string each (every restored action appends
// at least two); j.mu is held. They are gathered for at most journalDelay, or journalBatch bytes, and written
// at once: one write for many records instead of one each. A build killed
// meanwhile loses the records of its last moments, whose outputs the next
// build finds without a record and restores from the cache (a record it
// did keep cannot vouch for a file put there since: that has another inode
// or change time).
func (j *Journal) appendedLines(n int) {
	j.appended += n
	if len(j.buf) >= journalBatch {
		j.flush()
		return
	}
	j.flushSoon()
}

// flushSoon has the gathered journal lines and explain records written
// within journalDelay; j.mu is held.
func (j *Journal) flushSoon() {
	if j.timer {
		return
	}
	j.timer = true
	time.AfterFunc(journalDelay, func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.timer = false
		if !j.closed {
			j.flush()
			j.flushExplain()
		}
	})
}

const (
	// journalBatch is how many bytes of journal lines are gathered at
	// most before they are written.
	journalBatch = 64 << 10
	// journalDelay is how long they are gathered at most.
	journalDelay = 100 * time.Millisecond
)

// flush writes the gathered journal lines; j.mu is held.
func (j *Journal) flush() {
	if len(j.buf) == 0 || j.err != nil {
		return
	}
	if j.f == nil {
		f, err := os.OpenFile(filepath.Join(j.dir, journalFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			j.err = fmt.Errorf("opening journal: %w", err)
			return
		}
		j.f = f
	}
	b := j.buf
	if j.needNL {
		b = append([]byte("\n"), b...)
		j.needNL = false
	}
	_, err := j.f.Write(b)
	j.buf = j.buf[:0]
	if err != nil {
		j.err = fmt.Errorf("writing journal: %w", err)
	}
}

// ActionRecord is what an action last ran with, for `hepbuild explain`.
type ActionRecord struct {
	// Key is the action key it ran (or was restored) with.
	Key      cache.Digest
	Owner    string
	Mnemonic string
	Outputs  []string
	Argv     []string
	Env      map[string]string
	// Inputs maps every input file (files below folder inputs included) to its digest.
	Inputs map[string]cache.Digest
	// Environment is the digest of the software environment (EnvironmentDigest).
	Environment cache.Digest
	// Content is the digest of a write action's content.
	Content cache.Digest
	// Remote is the identity of the remote file the action downloads or
	// records (RemoteFile.Identity).
	Remote string
	Time   time.Time
}

// actionRecordJSON is the explain log's line: digests as "hash/size".
type actionRecordJSON struct {
	Key         string            `json:"key"`
	Owner       string            `json:"owner,omitempty"`
	Mnemonic    string            `json:"mnemonic,omitempty"`
	Outputs     []string          `json:"outputs"`
	Argv        []string          `json:"argv,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Inputs      map[string]string `json:"inputs,omitempty"`
	Environment string            `json:"environment,omitempty"`
	Content     string            `json:"content,omitempty"`
	Remote      string            `json:"remote,omitempty"`
	Time        time.Time         `json:"time"`
}

func newActionRecord(a *Action, key *Key, inputs map[string]cache.Digest) *ActionRecord {
	rec := &ActionRecord{
		Key:         key.Digest,
		Owner:       a.Owner.String(),
		Mnemonic:    a.Mnemonic,
		Outputs:     actionOutputPaths(a),
		Argv:        a.Argv,
		Env:         a.Env,
		Inputs:      inputs,
		Environment: key.Environment,
		Time:        time.Now().UTC(),
	}
	if a.Kind == KindWrite {
		rec.Content = cache.FromBytes(a.Extras().Content)
	}
	if a.Extras().Remote != nil {
		rec.Remote = a.Extras().Remote.Identity()
	}
	return rec
}

func (r *ActionRecord) toJSON() actionRecordJSON {
	w := actionRecordJSON{
		Key: r.Key.String(), Owner: r.Owner, Mnemonic: r.Mnemonic, Outputs: r.Outputs,
		Argv: r.Argv, Env: r.Env, Remote: r.Remote, Time: r.Time,
	}
	if len(r.Inputs) > 0 {
		w.Inputs = make(map[string]string, len(r.Inputs))
		for p, d := range r.Inputs {
			w.Inputs[p] = d.String()
		}
	}
	if !r.Environment.IsZero() {
		w.Environment = r.Environment.String()
	}
	if !r.Content.IsZero() {
		w.Content = r.Content.String()
	}
	return w
}

func (w *actionRecordJSON) record() (*ActionRecord, error) {
	parse := func(s string) (cache.Digest, error) {
		if s == "" {
			return cache.Digest{}, nil
		}
		return cache.ParseDigest(s)
	}
	r := &ActionRecord{Owner: w.Owner, Mnemonic: w.Mnemonic, Outputs: w.Outputs, Argv: w.Argv, Env: w.Env, Remote: w.Remote, Time: w.Time}
	var err error
	if r.Key, err = parse(w.Key); err != nil {
		return nil, err
	}
	if r.Environment, err = parse(w.Environment); err != nil {
		return nil, err
	}
	if r.Content, err = parse(w.Content); err != nil {
		return nil, err
	}
	r.Inputs = make(map[string]cache.Digest, len(w.Inputs))
	for p, s := range w.Inputs {
		if r.Inputs[p], err = parse(s); err != nil {
			return nil, err
		}
	}
	if len(r.Outputs) == 0 {
		return nil, errors.New("record without outputs")
	}
	return r, nil
}

// explain appends what the action ran with to the explain log.
func (j *Journal) explain(rec *ActionRecord) {
	bp := explainBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledExplain {
			explainBuffers.Put(bp)
		}
	}()
	b := rec.appendJSON((*bp)[:0])
	if b == nil {
		return // a time JSON cannot hold: not recorded
	}
	*bp = b
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.err != nil {
		return
	}
	j.xBuf = append(append(j.xBuf, b...), '\n')
	j.xPending++
	for _, o := range rec.Outputs {
		if j.prev != nil {
			j.prev[o] = rec
		}
	}
	if len(j.xBuf) >= explainBatch {
		j.flushExplain()
		return
	}
	j.flushSoon()
}

// explainBuffers holds the buffers explain lays a record out in before it
// takes the lock: one per record would be an allocation per action, and
// its growth past a first guess another few. Those grown past
// maxPooledExplain (an action with thousands of inputs) are left to the
// collector.
var explainBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const maxPooledExplain = 64 << 10

// explainBatch is how many bytes of explain records are gathered at most
// before they are written (or for journalDelay): one write for about a
// hundred actions. A build killed meanwhile loses them, and explain then
// tells of an earlier run of those actions, or of none.
const explainBatch = 64 << 10

// flushExplain writes the gathered explain records; j.mu is held.
func (j *Journal) flushExplain() {
	if len(j.xBuf) == 0 || j.err != nil {
		return
	}
	if j.xf == nil {
		f, err := os.OpenFile(filepath.Join(j.dir, explainFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			j.err = fmt.Errorf("opening explain log: %w", err)
			return
		}
		j.xf = f
	}
	b := j.xBuf
	if j.xNeedNL {
		b = append([]byte("\n"), b...)
		j.xNeedNL = false
	}
	n, err := j.xf.Write(b)
	j.xBytes += int64(n)
	j.xBuf = j.xBuf[:0]
	if err != nil {
		j.err = fmt.Errorf("writing explain log: %w", err)
		return
	}
	j.xAppended += j.xPending
	j.xPending = 0
}

// Previous returns what the action that last made outputPath successfully
// ran with. The explain log is read on the first call.
func (j *Journal) Previous(outputPath string) (*ActionRecord, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.prev == nil {
		j.flushExplain()
		j.prev = map[string]*ActionRecord{}
		for _, rec := range readExplain(filepath.Join(j.dir, explainFile)) {
			for _, o := range rec.Outputs {
				j.prev[o] = rec
			}
		}
	}
	rec, ok := j.prev[outputPath]
	return rec, ok
}

// readExplain returns the explain log's records in order; bad lines are skipped.
func readExplain(path string) []*ActionRecord {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var recs []*ActionRecord
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var w actionRecordJSON
		if json.Unmarshal(line, &w) != nil {
			continue
		}
		if rec, err := w.record(); err == nil {
			recs = append(recs, rec)
		}
	}
	return recs
}

// Close compacts the journal and the explain log when they hold enough
// superseded lines (see below), and reports the first write error. The
// Journal is unusable after, but for reading its records (output, as
// build stamps do), which Close blocks only while it lays out the
// compacted journal, not while it writes the files. A second Close
// waits for the first and returns its result.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		<-j.done
		return j.closeErr
	}
	j.flush()
	j.flushExplain()
	j.closed = true
	j.done = make(chan struct{})
	defer close(j.done)
	for _, f := range []*os.File{j.f, j.xf} {
		if f != nil {
			if err := f.Close(); err != nil && j.err == nil {
				j.err = err
			}
		}
	}
	if j.err != nil {
		j.closeErr = j.err
		j.mu.Unlock()
		return j.closeErr
	}
	// Both files are rewritten without their superseded lines only once
	// those are about as many as the live ones (the journal) or twice as
	// many (the explain log, whose records are larger and cost JSON to
	// read): a build pays for compaction in proportion to what it
	// appended, not to the size of the whole analysis. Readers take the
	// last line for a path, so a log with superseded lines reads the same.
	var compacted []byte
	if j.lines+j.appended > 2*(len(j.outputs)+len(j.keys))+64 {
		compacted = j.compactedJournal()
	}
	explainDue := j.explainCompactDue()
	j.mu.Unlock()

	// No line is appended any more: the files are written without the
	// lock, and each mostly waits for its file to be read, written and
	// synced, so the two overlap.
	var journalErr error
	var wg sync.WaitGroup
	if compacted != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := writeFileAtomic(filepath.Join(j.dir, journalFile), compacted); err != nil {
				journalErr = fmt.Errorf("compacting journal: %w", err)
			}
		}()
	}
	var explainErr error
	if explainDue {
		explainErr = j.compactExplain()
	}
	wg.Wait()
	j.closeErr = cmp.Or(journalErr, explainErr)
	return j.closeErr
}

// explainCompactDue says whether the explain log has grown to about three
// times what its live records take: one record per action that has
// outputs in the journal, each about as large as the records this process
// appended.
func (j *Journal) explainCompactDue() bool {
	if j.xAppended == 0 {
		return false
	}
	actions := make(map[cache.Digest]struct{}, len(j.outputs))
	for _, o := range j.outputs {
		actions[o.Key] = struct{}{}
	}
	live := int64(max(len(actions), 1)) * (j.xBytes / int64(j.xAppended))
	return j.xSize+j.xBytes > 3*live
}

// compactedJournal lays out the journal's live records, one line each,
// sorted by path, then its key memos; j.mu is held.
func (j *Journal) compactedJournal() []byte {
	paths := make([]string, 0, len(j.outputs))
	for p := range j.outputs {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	// A line is about 300 bytes; the buffer grows at most once or twice.
	b := make([]byte, 0, len(paths)*320+len(j.keys)*200)
	for _, p := range paths {
		b = appendRecordLine(b, p, j.outputs[p])
	}
	for _, p := range sortedKeys(j.keys) {
		if _, ok := j.outputs[p]; !ok {
			b = appendKeyLine(b, p, j.keys[p])
		}
	}
	return b
}

// appendKeyLine appends the line of a key memo.
func appendKeyLine(b []byte, path string, m keyMemo) []byte {
	start := len(b)
	b = append(b, "k\t"...)
	b = append(b, quotePath(path)...)
	b = append(b, '\t')
	b = appendDigest(b, m.Key)
	b = append(b, '\t')
	b = append(b, m.Fingerprint...)
	return appendChecksum(b, start)
}

// appendRecordLine appends the journal line of the output record to b:
// "o" (or "r" when kept only in the cache), the path, the key, the digest,
// the stat (or the executable bit) and the fingerprint, tab-separated,
// then a checksum of all that.
func appendRecordLine(b []byte, path string, o outputRecord) []byte {
	start := len(b)
	if o.Remote {
		b = append(b, "r\t"...)
	} else {
		b = append(b, "o\t"...)
	}
	b = append(b, quotePath(path)...)
	b = append(b, '\t')
	b = appendDigest(b, o.Key)
	b = append(b, '\t')
	b = appendDigest(b, o.Digest)
	b = append(b, '\t')
	if o.Remote {
		if o.Executable {
			b = append(b, '1')
		} else {
			b = append(b, '0')
		}
		b = append(b, '\t')
		b = append(b, o.Fingerprint...)
	} else {
		b = strconv.AppendInt(b, o.Size, 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, o.MTime, 10)
		b = append(b, '\t')
		b = strconv.AppendUint(b, o.Inode, 10)
		b = append(b, '\t')
		b = append(b, o.Fingerprint...)
		b = append(b, '\t')
		b = strconv.AppendInt(b, o.CTime, 10)
	}
	return appendChecksum(b, start)
}

// appendDigest appends d.String().
func appendDigest(b []byte, d cache.Digest) []byte {
	b = append(b, d.Hash...)
	b = append(b, '/')
	return strconv.AppendInt(b, d.Size, 10)
}

// compactExplain keeps the last record of each action, identified by its
// first output.
func (j *Journal) compactExplain() error {
	path := filepath.Join(j.dir, explainFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("compacting explain log: %w", err)
	}
	// Lines are kept as written, not encoded again; the last record of
	// each action that readExplain would return is the one kept, so a
	// damaged newer line never displaces the older record readers use.
	lines := bytes.Split(b, []byte("\n"))
	firsts := make([]string, len(lines))
	last := map[string]int{}
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		if out, ok := explainLineOutput(line); ok && out != "" {
			firsts[i] = out
			last[out] = i
		}
	}
	// The kept lines are moved up in b itself: each goes to or before
	// where it was, over lines already passed, and a second buffer as
	// large as the log (tens of megabytes at 20k actions) cost more to
	// clear than the rest of the compaction.
	w := 0
	for i, line := range lines {
		if firsts[i] == "" || last[firsts[i]] != i {
			continue
		}
		w += copy(b[w:], line)
		if w == len(b) {
			b = append(b, '\n') // the last line, torn: no newline was there
		} else {
			b[w] = '\n' // where line's own newline was, or before
		}
		w++
	}
	if err := writeFileAtomic(path, b[:w]); err != nil {
		return fmt.Errorf("compacting explain log: %w", err)
	}
	return nil
}

// writeFileAtomic replaces the file with data: written beside it, synced,
// renamed, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	return replaceFile(path, data, true)
}

// replaceFile is writeFileAtomic, without the sync unless durable: after
// a crash the file may then be empty or partly written, which suits a
// file that checks itself (a build stamp ends with its own digest).
func replaceFile(path string, data []byte, durable bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// LockOutputBase takes an exclusive lock on the output base for the
// duration of a build, so that two hepbuild processes never write one output
// tree or journal at once. It waits for a build holding it, saying so once
// on stderr. Call unlock when the build is done.
func LockOutputBase(path string) (unlock func(), err error) {
	return lockOutputBase(path, os.Stderr)
}

func lockOutputBase(path string, w io.Writer) (func(), error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("creating output base: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(path, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening output base lock: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		holder, _ := io.ReadAll(f)
		pid := strings.TrimSpace(string(holder))
		if pid == "" {
			pid = "unknown"
		}
		fmt.Fprintf(w, "waiting for another hepbuild build in this workspace (pid %s)\n", pid)
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
			if err != syscall.EINTR {
				break
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking output base %s: %w", path, err)
	}
	// Say who holds it, for the next one to wait.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		})
	}, nil
}

// PrepareOutputBase creates the output base's folders (out/, logs/), points
// the exec root's hepbuild-out at out/, and clears what a killed build left
// in tmp/. Call it with the output base locked.
func PrepareOutputBase(execRoot, outputBase string) error {
	outputBase, err := filepath.Abs(outputBase)
	if err != nil {
		return err
	}
	if err := ClaimOutputBase(outputBase, execRoot); err != nil {
		return err
	}
	out := filepath.Join(outputBase, "out")
	for _, d := range []string{out, filepath.Join(outputBase, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating output base: %w", err)
		}
	}
	if err := cache.RemoveTree(filepath.Join(outputBase, "tmp")); err != nil {
		return fmt.Errorf("clearing output base tmp: %w", err)
	}
	link := filepath.Join(execRoot, OutDir)
	fi, err := os.Lstat(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("%s is not a link to the output base; remove it (hepbuild makes it a link to %s)", link, out)
	default:
		if target, err := os.Readlink(link); err == nil && target == out {
			return nil
		}
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("replacing %s: %w", link, err)
		}
	}
	if err := os.Symlink(out, link); err != nil {
		return fmt.Errorf("linking %s to the output base: %w", link, err)
	}
	return nil
}

// A build stamp lets a build with nothing to do skip loading, analysis and
// scheduling altogether: after a successful build, the caller records every
// file and folder the build depended on or made (BUILD and .star files,
// read_json files, the folders listed by globs and package lookups, every
// action's inputs and outputs) under a key naming the request (hepbuild
// itself, workspace, targets, settings). The next build with that key first
// stats those paths; when none changed, it is a null build, decided by
// lstat-like calls only, as ninja decides it.
//
// A path's state is its stat (size, mtime, ctime, inode, device, mode, and
// for folders the same, which changes when an entry is added, removed or
// renamed). A path modified within racySlop of recording could change again
// without changing its stat (the timestamp tick), so such "racy" entries also
// keep a digest of their content (or of a folder's sorted names), checked
// when the stat matches.

// Stamp is what WriteStamp records.
type Stamp struct {
	// Key names the request; see StampKey.
	Key string
	// Files are absolute paths of files and folders whose stat must not change.
	Files []string
	// Trees are absolute paths of folders whose every file and sub-folder
	// counts (folder inputs and outputs); they are walked when recording.
	Trees []string
	// Actions is the number of actions the build comprised, and Roots the
	// outputs it was asked for: what the caller reports on a null build.
	Actions int
	Roots   []string
	// Journal, when set, is the build's, with its outputs relative to
	// ExecRoot: an output recorded there with the stat it still has is
	// not read again for the digest of a racy path (a file restored or
	// made just now), its recorded digest stands in. That digest is the
	// content the build made; if the file no longer holds it, the next
	// check of the stamp fails, as it should.
	Journal  *Journal
	ExecRoot string
	// Runner, when set, is the one that made the build: the outputs it
	// knows the state of without a stat (see Runner.stampStat) are
	// recorded in that state, with the digest it restored them with.
	Runner *Runner
	// Known holds states of paths the caller took once the build was
	// done (see StatPath), from KnownAt on, recorded as they are instead
	// of stat'ing the paths again; a path missing from it is stat'ed.
	// The racy window reaches back from KnownAt.
	Known   map[string]PathState
	KnownAt time.Time
}

// PathState is the state of a path as a build stamp records it.
type PathState struct{ st pathStat }

// StatPath returns the path's state; a missing path is a state too.
func StatPath(p string) (PathState, error) {
	st, err := statPath(p)
	return PathState{st}, err
}

// StatPaths is StatPath of each path, on a few goroutines: a build reads
// thousands of sources, whose stats are otherwise milliseconds of system
// calls in a row while the cores wait.
func StatPaths(paths []string) ([]PathState, []error) {
	states, errs := make([]PathState, len(paths)), make([]error, len(paths))
	workers := min(runtime.GOMAXPROCS(0), 4, len(paths)/1000+1)
	chunk := (len(paths) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := min(w*chunk, len(paths)), min((w+1)*chunk, len(paths))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				states[i], errs[i] = StatPath(paths[i])
			}
		}()
	}
	wg.Wait()
	return states, errs
}

// SameContent reports whether the path was not written between the two
// states: it exists in both or neither, as the same kind, inode, size and
// modification time. The ctime may differ: the linux sandbox's hard links
// to sources change it, not what they hold.
func (s PathState) SameContent(t PathState) bool {
	a, b := s.st, t.st
	return a.exists == b.exists && a.dir == b.dir && a.ino == b.ino && a.dev == b.dev && a.size == b.size && a.mtime == b.mtime
}

// SameAs reports whether the path, in state s, is as the stat fi found it
// (nil: it did not exist): the same kind, size and modification time.
// fi may come from os.Stat (a link followed) taken by another package.
func (s PathState) SameAs(fi fs.FileInfo) bool {
	if fi == nil {
		return !s.st.exists
	}
	return s.st.exists && s.st.dir == fi.IsDir() && s.st.size == fi.Size() && s.st.mtime == fi.ModTime().UnixNano()
}

const (
	stampDir   = "stamps"
	stampMagic = "hepstamp1"
)

// StampKey combines the parts that name a build request with the identity
// of the running hepbuild binary (path, size, mtime, inode) and KeyVersion,
// so that another build of hepbuild never trusts an older one's stamp.
func StampKey(parts ...string) string {
	h := sha256.New()
	add := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	add(stampMagic)
	add(KeyVersion)
	exe, err := os.Executable()
	if err == nil {
		if fi, err := os.Stat(exe); err == nil {
			st := statOf(fi)
			add(fmt.Sprintf("%s %d %d %d %d", exe, st.size, st.mtime, st.ino, st.dev))
		}
	}
	if err != nil {
		// Without knowing which binary runs, a stamp must never match.
		add(strconv.FormatInt(time.Now().UnixNano(), 10))
	}
	for _, p := range parts {
		add(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func stampPath(outputBase, key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(outputBase, stampDir, hex.EncodeToString(sum[:12])+".v1")
}

// pathStat is the state of a path a stamp records; exists false for a path
// that did not exist.
type pathStat struct {
	exists             bool
	dir                bool
	size, mtime, ctime int64
	ino, dev           uint64
	mode               uint32
}

func statOf(fi fs.FileInfo) pathStat {
	s := pathStat{exists: true, dir: fi.IsDir(), size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: uint32(fi.Mode())}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ctime = cache.CtimeNano(st)
		s.ino, s.dev = uint64(st.Ino), uint64(st.Dev)
	}
	return s
}

// statPath stats p, following symbolic links; a missing path is a state too.
// A link is also its own inode: an output link pointed elsewhere, even at
// the same file, or a source link made anew, is a changed path.
func statPath(p string) (pathStat, error) {
	s, _, err := statPathInfo(p)
	return s, err
}

// statPathInfo is statPath that also returns the stat of what the path
// leads to (a link followed, as os.Stat), or nil when nothing is there.
func statPathInfo(p string) (pathStat, fs.FileInfo, error) {
	fi, err := os.Lstat(p)
	var linkIno uint64
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// The link's inode alone is not enough: a link removed and made
		// anew often gets the inode just freed. Its length (that of its
		// target) and its time tell the new link from the old.
		linkIno = uint64(fi.Size())*0xff51afd7ed558ccd ^ uint64(fi.ModTime().UnixNano())*0xc4ceb9fe1a85ec53
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			linkIno ^= uint64(st.Ino)
		}
		fi, err = os.Stat(p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return pathStat{ino: linkIno}, nil, nil
	}
	if err != nil {
		return pathStat{}, nil, err
	}
	s := statOf(fi)
	s.ino ^= linkIno * 0x9e3779b97f4a7c15 // apart from the target's own inode
	return s, fi, nil
}

// stampRacySlop is the stat cache's racy window (see cache.StatCache).
const stampRacySlop = int64(100 * time.Millisecond)

func (s pathStat) racy(recorded int64) bool {
	slop := int64(stampRacySlop)
	if s.mtime%1e9 == 0 {
		// Whole-second timestamps (some file systems): a second write in
		// the same second keeps the same mtime. Same rule as cache.StatCache.
		slop = 2e9
	}
	return s.exists && (s.mtime >= recorded-slop || s.ctime >= recorded-slop)
}

// contentDigest is a file's content digest or a folder's sorted names'.
func contentDigest(p string, dir bool) (string, error) {
	if !dir {
		d, err := cache.FromFile(p)
		return d.Hash, err
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Name())
		b.WriteByte(0)
	}
	return cache.FromBytes([]byte(b.String())).Hash, nil
}

// WriteStamp records the state of the stamp's paths under the output base,
// replacing an earlier stamp of the same key. Call it after a successful
// build, with the output base locked.
func WriteStamp(outputBase string, s Stamp) error {
	recorded := time.Now().UnixNano()
	if len(s.Known) > 0 {
		// A state taken earlier is racy from earlier on.
		recorded = min(recorded, s.KnownAt.UnixNano())
	}
	paths := append([]string(nil), s.Files...)
	for _, t := range s.Trees {
		err := filepath.WalkDir(t, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				paths = append(paths, p)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	sort.Strings(paths)
	// Sized up front: a stamp of a large build is megabytes, and growing
	// it by appends copied it a dozen times at the end of every build.
	size := len(stampMagic) + len(s.Key) + 64 + sha256.Size
	for _, p := range paths {
		size += len(p) + 96 // the path, its stat and a racy file's digest
	}
	for _, r := range s.Roots {
		size += len(r) + 8
	}
	b := append(make([]byte, 0, size), stampMagic...)
	str := func(v string) { b = binary.AppendUvarint(b, uint64(len(v))); b = append(b, v...) }
	str(s.Key)
	b = binary.AppendVarint(b, recorded)
	b = binary.AppendUvarint(b, uint64(s.Actions))
	b = binary.AppendUvarint(b, uint64(len(s.Roots)))
	for _, r := range s.Roots {
		str(r)
	}
	paths = slices.Compact(paths)
	var restored func(string) (pathStat, cache.Digest, bool)
	if s.Runner != nil {
		restored = s.Runner.stampStats()
	}
	entries, err := stampEntries(paths, recorded, &s, restored)
	if err != nil {
		return err
	}
	for _, e := range entries {
		str(e.path)
		b = appendPathStat(b, e.st)
		str(e.digest)
	}
	sum := sha256.Sum256(b)
	b = append(b, sum[:]...)
	path := stampPath(outputBase, s.Key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Not synced: a stamp a crash left torn fails its digest, and the
	// build after it is a full one, as it would be without a stamp.
	if err := replaceFile(path, b, false); err != nil {
		return fmt.Errorf("writing build stamp: %w", err)
	}
	return nil
}

// stampEntries stats the paths, and digests the racy ones, on a few
// goroutines: at the end of a build the cores are free, and a stamp of
// thousands of outputs is otherwise milliseconds of system calls in a row.
func stampEntries(paths []string, recorded int64, s *Stamp, restored func(string) (pathStat, cache.Digest, bool)) ([]stampEntry, error) {
	entries := make([]stampEntry, len(paths))
	errs := make([]error, len(paths))
	workers := min(runtime.GOMAXPROCS(0), 4, len(paths)/1000+1)
	chunk := (len(paths) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := min(w*chunk, len(paths)), min((w+1)*chunk, len(paths))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				p := paths[i]
				st, known, err := s.state(p, restored)
				digest := ""
				if err == nil && st.racy(recorded) {
					var ok bool
					if digest, ok = known.Hash, known.Hash != ""; !ok {
						digest, ok = s.Journal.recordedDigest(s.ExecRoot, p, st)
					}
					if !ok {
						digest, err = contentDigest(p, st.dir)
					}
				}
				if err != nil {
					errs[i] = fmt.Errorf("recording %s: %w", p, err)
					return
				}
				entries[i] = stampEntry{path: p, st: st, digest: digest}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// state returns the state of the path p to record: what the caller or the
// runner knows of it (restored: see Runner.stampStats), else its stat
// now. For an output the runner knows, also the digest it has.
func (s *Stamp) state(p string, restored func(string) (pathStat, cache.Digest, bool)) (pathStat, cache.Digest, error) {
	if k, ok := s.Known[p]; ok {
		return k.st, cache.Digest{}, nil
	}
	if restored != nil {
		if rel, ok := strings.CutPrefix(p, s.Runner.ExecRoot); ok && len(rel) > 1 && rel[0] == filepath.Separator {
			if st, d, ok := restored(filepath.ToSlash(rel[1:])); ok {
				return st, d, nil
			}
		}
	}
	st, err := statPath(p)
	if err == nil {
		st = s.Journal.vouched(s.ExecRoot, p, st)
	}
	return st, cache.Digest{}, err
}

// vouched returns the state to record for the path p (absolute, below
// root) found in state st: st itself, unless p is an output file the
// journal recorded (made, restored or found up to date by the build) and
// it was written, replaced or removed since. Then it is the state the
// record describes, which the next check of the stamp does not find:
// recorded as it is, an output edited while the build went on (saved in
// an editor, say) would be taken by every null build for what the build
// made, while a full build finds the edit (upToDate). Only what a write
// changes is compared, not the ctime, which another link to the file (a
// sandbox's, an output of the same blob) moves.
func (j *Journal) vouched(root, p string, st pathStat) pathStat {
	if j == nil || root == "" || st.dir {
		return st
	}
	rel, ok := strings.CutPrefix(p, root+string(filepath.Separator))
	if !ok {
		return st
	}
	o, ok := j.output(filepath.ToSlash(rel))
	if !ok || o.Remote {
		return st
	}
	if st.exists && st.size == o.Size && st.mtime == o.MTime && st.ino == o.Inode {
		return st
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// A link output: the record is of the link, st of its target.
		if l := statOf(fi); l.size == o.Size && l.mtime == o.MTime && l.ino == o.Inode {
			return st
		}
	}
	return pathStat{exists: true, size: o.Size, mtime: o.MTime, ctime: o.CTime, ino: o.Inode, dev: st.dev, mode: st.mode}
}

// recordedDigest returns the content digest the journal recorded for the
// file at the absolute path p below root when its recorded stat is st.
func (j *Journal) recordedDigest(root, p string, st pathStat) (string, bool) {
	if j == nil || root == "" || st.dir || !st.exists {
		return "", false
	}
	rel, ok := strings.CutPrefix(p, root+string(filepath.Separator))
	if !ok {
		return "", false
	}
	o, ok := j.output(filepath.ToSlash(rel))
	if !ok || o.Remote || o.Size != st.size || o.MTime != st.mtime || o.Inode != st.ino || o.CTime != st.ctime ||
		o.Digest.Size != st.size {
		return "", false
	}
	return o.Digest.Hash, true
}

// RemoveStamps forgets every stamp of the output base, e.g. when the output
// tree is cleaned. Stamps do not need it to stay correct (a removed output
// no longer matches its stat), only to free space.
func RemoveStamps(outputBase string) error {
	return os.RemoveAll(filepath.Join(outputBase, stampDir))
}

func appendPathStat(b []byte, s pathStat) []byte {
	var flags uint64
	if s.exists {
		flags |= 1
	}
	if s.dir {
		flags |= 2
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendVarint(b, s.size)
	b = binary.AppendVarint(b, s.mtime)
	b = binary.AppendVarint(b, s.ctime)
	b = binary.AppendUvarint(b, s.ino)
	b = binary.AppendUvarint(b, s.dev)
	return binary.AppendUvarint(b, uint64(s.mode))
}

type stampEntry struct {
	path   string
	st     pathStat
	digest string
}

// CheckStamp reports whether the stamp of key exists and every path it
// recorded is in the recorded state: then the build it describes has
// nothing to do. It returns the stamp (without its paths) for the summary.
// Any doubt (no stamp, a corrupt one, a changed path) is false.
//
// The entries are decoded by the goroutines that stat them, and the
// stamp's digest is checked only once every stat matched: the usual
// answer after a change (a clean, an edit) is a no from one of the first
// stats, which then costs neither the digest of a stamp of megabytes nor
// a string for each of its paths. Nothing a corrupt stamp says is acted
// on but a stat; contents are read for racy entries only after the digest.
func CheckStamp(outputBase, key string) (Stamp, bool) {
	b, err := os.ReadFile(stampPath(outputBase, key))
	if err != nil || len(b) < len(stampMagic)+sha256.Size || string(b[:len(stampMagic)]) != stampMagic {
		return Stamp{}, false
	}
	body := b[:len(b)-sha256.Size]
	r := stampReader{b: body[len(stampMagic):]}
	s := Stamp{Key: r.str()}
	if r.bad || s.Key != key {
		return Stamp{}, false
	}
	_ = r.varint() // recorded
	s.Actions = int(r.uvarint())
	for n := r.uvarint(); n > 0 && !r.bad; n-- {
		s.Roots = append(s.Roots, r.str())
	}
	// Where each entry starts, found without decoding it.
	starts := make([]int, 0, len(r.b)/64)
	for len(r.b) > 0 && !r.bad {
		starts = append(starts, len(body)-len(r.b))
		r.skipEntry()
	}
	if r.bad {
		return Stamp{}, false
	}
	verified := func() bool {
		sum := sha256.Sum256(body)
		return bytes.Equal(sum[:], b[len(body):])
	}
	if !checkEntries(body, starts, verified) {
		return Stamp{}, false
	}
	return s, true
}

// stampReader decodes a stamp; bad is set at the first malformed value.
type stampReader struct {
	b   []byte
	bad bool
}

func (r *stampReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stampReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stampReader) bytes() []byte {
	n := r.uvarint()
	if r.bad || uint64(len(r.b)) < n {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *stampReader) str() string { return string(r.bytes()) }

// entry decodes the entry appendPathStat and WriteStamp wrote.
func (r *stampReader) entry() stampEntry {
	var e stampEntry
	e.path = r.str()
	flags := r.uvarint()
	e.st = pathStat{exists: flags&1 != 0, dir: flags&2 != 0, size: r.varint(), mtime: r.varint(), ctime: r.varint(),
		ino: r.uvarint(), dev: r.uvarint(), mode: uint32(r.uvarint())}
	e.digest = r.str()
	return e
}

// skipEntry passes over an entry, as entry reads it.
func (r *stampReader) skipEntry() {
	r.bytes()
	for range 7 { // flags, size, mtime, ctime, ino, dev, mode: varints all
		if _, n := binary.Uvarint(r.b); n > 0 {
			r.b = r.b[n:]
		} else {
			r.bad = true
		}
	}
	r.bytes()
}

// checkEntries decodes and stats the entries of the stamp body that
// start at the offsets, on a few goroutines, and reports whether all are
// unchanged: first their stats, then, when verified (the stamp's digest)
// holds, the content of the racy ones.
func checkEntries(body []byte, starts []int, verified func() bool) bool {
	workers := min(runtime.GOMAXPROCS(0), 4, len(starts)/1000+1)
	var changed atomic.Bool
	var wg sync.WaitGroup
	racy := make([][]stampEntry, workers)
	chunk := (len(starts) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		part := starts[min(w*chunk, len(starts)):min((w+1)*chunk, len(starts))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, off := range part {
				if changed.Load() {
					return
				}
				r := stampReader{b: body[off:]}
				e := r.entry()
				if r.bad {
					changed.Store(true)
					return
				}
				st, err := statPath(e.path)
				if err != nil || st != e.st {
					changed.Store(true)
					return
				}
				if e.digest != "" {
					racy[w] = append(racy[w], e)
				}
			}
		}()
	}
	wg.Wait()
	if changed.Load() || !verified() {
		return false
	}
	for _, part := range racy {
		for _, e := range part {
			if d, err := contentDigest(e.path, e.st.dir); err != nil || d != e.digest {
				return false
			}
		}
	}
	return true
}
