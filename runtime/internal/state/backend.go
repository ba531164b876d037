package state

// Backend keeps checkpoints: Store (a folder of files, "files") or
// PebbleStore (a Pebble database that stores only what changed, "pebble").
// Savepoints are in the files format whichever backend took them, so
// either backend's run can start from them (a Store opened on the
// savepoint's folder reads it).
//
// Checkpoint ids are the caller's, increasing: the newest checkpoint is the
// one with the largest id.
//
// A Backend is used by one goroutine at a time.
type Backend interface {
	// Write makes checkpoint c durable under c.ID (replacing one with that
	// id), then drops the checkpoints beyond the Keep newest complete ones.
	// A nil error means c is durable. On an error (a full disk, say) the
	// caller takes c as not written: a failed write leaves no complete
	// checkpoint c, the earlier checkpoints are untouched and still read
	// back, and a later Write can succeed once the cause is gone. The error
	// wraps its cause (errors.Is(err, syscall.ENOSPC) for a full disk).
	// One exception, Store only: if dropping old checkpoints fails after c
	// is durable, that error is returned and c is complete (it is a
	// consistent checkpoint, so restoring it is harmless).
	Write(c *Checkpoint) error
	// Latest returns the newest complete checkpoint that reads back intact,
	// or nil when there is none, with an error for every newer one it
	// skipped ("checkpoint 7 skipped: <reason>": half-written, corrupt,
	// data missing, or of a format version this wsp does not read). The
	// error result is for failing to look at all.
	Latest() (*Checkpoint, []error, error)
	// NextID is the id after every checkpoint present, intact or not (1
	// when there is none): a run numbers its checkpoints from it, so they
	// are the newest even when it started from an older savepoint.
	NextID() (uint64, error)
	// SaveLatest copies the newest intact checkpoint into dir, which must
	// not exist yet, as a files-format store (a savepoint), and returns its
	// id. dir is either complete or absent afterwards.
	SaveLatest(dir string) (uint64, error)
	// Close releases what the backend holds (Store holds nothing). Nothing
	// else is called after it.
	Close() error
	// Name is the backend's name in settings and logs: "files" or
	// "pebble".
	Name() string
}

var (
	_ Backend = (*Store)(nil)
	_ Backend = (*PebbleStore)(nil)
)

// Close does nothing: a Store holds no open files between calls.
func (s *Store) Close() error { return nil }

// Name is "files".
func (s *Store) Name() string { return "files" }
