package embedded

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/quarkgo/quark/providers/internal/sweeper"
)

// file is one open database file, shared by every store and journal this
// process opened on its path: one bbolt handle, one committer (so that the
// writes of all of them share the group commit and its fsync) and one
// sweeper.
type file struct {
	path     string // absolute
	db       *bolt.DB
	c        *committer
	sweeper  *sweeper.Loop
	now      func() time.Time // the sweeper's clock: the first opener's
	settings fileSettings
	refs     int // open handles; guarded by openFiles.mu
}

// fileSettings are the options that belong to the file rather than to one
// store or journal: a later Open or OpenJournal of an open path must ask
// for the same.
type fileSettings struct {
	NoSync             bool
	FileMode           fs.FileMode
	SweepInterval      time.Duration
	TombstoneRetention time.Duration
}

func settingsOf(o *Options) fileSettings {
	return fileSettings{NoSync: o.NoSync, FileMode: o.FileMode, SweepInterval: o.SweepInterval, TombstoneRetention: o.TombstoneRetention}
}

// openFiles are the database files open in this process, by absolute path.
var openFiles = struct {
	mu sync.Mutex // guards m and every file's refs
	m  map[string]*file
}{m: make(map[string]*file)}

// buckets are the buckets of a database file: the records, and the events
// and heads of the journal's streams.
var buckets = [][]byte{bucketName, eventsBucket, streamsBucket}

// acquire returns the file at path for one more store or journal: the file
// already open in this process, if its settings are o's, or else the file
// opened (and created, with its missing directories) with o, which has its
// defaults.
func acquire(path string, o *Options) (*file, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	openFiles.mu.Lock()
	defer openFiles.mu.Unlock()
	if f := openFiles.m[abs]; f != nil {
		if want := settingsOf(o); want != f.settings {
			return nil, fmt.Errorf("%w: the file is open in this process with other settings (%+v, asked for %+v)",
				errBadOption, f.settings, want)
		}
		f.refs++
		return f, nil
	}
	dir := filepath.Dir(abs)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating the directory %s: %w", dir, err)
	}
	db, err := bolt.Open(abs, o.FileMode, &bolt.Options{Timeout: o.Timeout, NoSync: o.NoSync})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, err
	}
	f := &file{path: abs, db: db, now: o.Now, settings: settingsOf(o), refs: 1}
	f.c = newCommitter(db, o.TombstoneRetention)
	var report func(int64, error)
	if hook := o.sweptHook; hook != nil {
		report = func(n int64, err error) { hook(int(n), err) }
	}
	f.sweeper = sweeper.Start(o.SweepInterval, func(ctx context.Context) (int64, error) {
		n, err := f.sweep(ctx)
		return int64(n), err
	}, report)
	openFiles.m[abs] = f
	return f, nil
}

// release gives back one store's or journal's hold on f. The last one lets
// the committer finish the requests it has accepted, stops the sweeper and
// closes the file.
func (f *file) release() error {
	openFiles.mu.Lock()
	defer openFiles.mu.Unlock()
	if f.refs--; f.refs > 0 {
		return nil
	}
	delete(openFiles.m, f.path)
	f.sweeper.Stop()
	f.c.close()
	return f.db.Close()
}
