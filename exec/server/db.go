package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	// A pure-Go SQLite: hepbuild stays one static binary that cross-compiles
	// without a C toolchain.
	_ "modernc.org/sqlite"
)

// schemaVersion is the database's PRAGMA user_version. A change to the
// tables below bumps it; a database written by a newer hepbuild is refused
// rather than misread.
const schemaVersion = 1

// The schema. Times are Unix nanoseconds, UTC.
//
//	builds       one row per build: what BuildStart said, how it ended, and
//	             (once ended) the build page as JSON, so that a past build's
//	             page reads one row.
//	plan_chunks  the action plan as it arrived, one compact blob per batch
//	             (encodePlan): a 1,000,000-action plan is a few tens of rows.
//	batches      the raw events of a running build, one blob per batch; they
//	             let a restarted server rebuild a running build's state, and
//	             are replaced by a snapshot when the build ends.
//	snapshots    the per-action state of an ended build (encodeSnapshot).
//	action_info  what the action page shows, one JSON row per ended action.
//	targets      an ended build's targets with their first action and state,
//	             one text blob per build, for search.
const schema = `
CREATE TABLE builds (
	id TEXT PRIMARY KEY,
	user TEXT NOT NULL,
	host TEXT NOT NULL,
	workspace TEXT NOT NULL,
	targets TEXT NOT NULL,
	command TEXT NOT NULL,
	version TEXT NOT NULL,
	total INTEGER NOT NULL,
	started INTEGER NOT NULL,
	finished INTEGER NOT NULL DEFAULT 0,
	updated INTEGER NOT NULL,
	outcome TEXT NOT NULL,
	exit_code INTEGER NOT NULL DEFAULT 0,
	error TEXT NOT NULL DEFAULT '',
	counts TEXT NOT NULL DEFAULT '{}',
	elapsed INTEGER NOT NULL DEFAULT 0,
	last_seq INTEGER NOT NULL DEFAULT 0,
	dropped INTEGER NOT NULL DEFAULT 0,
	view BLOB
);
CREATE INDEX builds_started ON builds(started);
CREATE INDEX builds_user ON builds(user, started);
CREATE TABLE plan_chunks (
	build TEXT NOT NULL,
	seq INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (build, seq)
) WITHOUT ROWID;
CREATE TABLE batches (
	build TEXT NOT NULL,
	seq INTEGER NOT NULL,
	events BLOB NOT NULL,
	PRIMARY KEY (build, seq)
) WITHOUT ROWID;
CREATE TABLE snapshots (
	build TEXT PRIMARY KEY,
	data BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE action_info (
	build TEXT NOT NULL,
	id INTEGER NOT NULL,
	info BLOB NOT NULL,
	PRIMARY KEY (build, id)
) WITHOUT ROWID;
CREATE TABLE targets (
	build TEXT PRIMARY KEY,
	data BLOB NOT NULL
) WITHOUT ROWID;
`

// openDB opens or creates the history database at path.
func openDB(ctx context.Context, path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("history database: %w", err)
	}
	// The history holds the builds' command lines, environment variables
	// and logs: readable by its owner only. SQLite gives its WAL and
	// shared-memory files the database file's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("history database: %w", err)
	}
	// WAL lets the pages read while a batch is written; synchronous=NORMAL
	// is durable across a crash of the server (not of the machine) and
	// keeps a batch's commit to one write; the busy timeout covers a second
	// server process on the same file.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// The DSN is a URI: '?' and '#' would end the path, and %XX be
	// decoded, opening another file than the one named.
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("history database %s: %w", path, err)
	}
	if err := migrate(ctx, db, path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func migrate(ctx context.Context, db *sql.DB, path string) error {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("history database %s: %w", path, err)
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("history database %s has schema version %d, newer than this hepbuild's %d: use a newer hepbuild or another --db", path, v, schemaVersion)
	case v != 0:
		return fmt.Errorf("history database %s has schema version %d, which this hepbuild cannot read", path, v)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("history database %s: %w", path, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return fmt.Errorf("history database %s: %w", path, err)
	}
	if n != 0 {
		return fmt.Errorf("%s is not a hepbuild history database (it has tables but no schema version)", path)
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("history database %s: creating tables: %w", path, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("history database %s: %w", path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("history database %s: %w", path, err)
	}
	return nil
}
