package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/wsp-project/wsp/runtime/internal/state"
)

// State backends: where a run's checkpoints go under Options.StateDir.
//
//	<state-dir>/pebble/        the Pebble backend's database (default)
//	<state-dir>/checkpoints/   the files backend's checkpoint folders
//	<state-dir>/savepoints/    savepoints (files format, from either backend)
//
// A state folder holds one backend's checkpoints: a run with the other
// backend refuses it rather than start afresh beside them.

// Backend names (Options.StateBackend).
const (
	BackendPebble = "pebble"
	BackendFiles  = "files"
)

func backendDir(stateDir, backend string) string {
	if backend == BackendFiles {
		return filepath.Join(stateDir, "checkpoints")
	}
	return filepath.Join(stateDir, BackendPebble)
}

// openBackend opens the checkpoint backend of stateDir ("": the one whose
// checkpoints it holds, else Pebble).
func openBackend(stateDir, backend string) (state.Backend, error) {
	if backend == "" {
		backend = BackendPebble
		if nonEmpty(backendDir(stateDir, BackendFiles)) && !nonEmpty(backendDir(stateDir, BackendPebble)) {
			backend = BackendFiles
		}
	}
	other := BackendFiles
	if backend == BackendFiles {
		other = BackendPebble
	}
	if nonEmpty(backendDir(stateDir, other)) && !nonEmpty(backendDir(stateDir, backend)) {
		return nil, fmt.Errorf("state folder %s is the %s backend's (%s): run with state-backend %s, "+
			"or take a savepoint and start a new state folder from it", stateDir, other, backendDir(stateDir, other), other)
	}
	if backend == BackendFiles {
		return &state.Store{Dir: backendDir(stateDir, backend)}, nil
	}
	s, err := state.OpenPebble(backendDir(stateDir, backend), state.PebbleOptions{})
	if err != nil {
		return nil, fmt.Errorf("state folder %s: %w", stateDir, err)
	}
	return s, nil
}

func nonEmpty(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err == nil && len(ents) > 0
}

// lockedBackend serializes a run's backend between its checkpoints and
// savepoints asked for while it runs (a Backend is used by one goroutine
// at a time).
type lockedBackend struct {
	mu sync.Mutex
	b  state.Backend
}

func (l *lockedBackend) Write(c *state.Checkpoint) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(c)
}

func (l *lockedBackend) Latest() (*state.Checkpoint, []error, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Latest()
}

func (l *lockedBackend) NextID() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.NextID()
}

func (l *lockedBackend) SaveLatest(dir string) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.SaveLatest(dir)
}

func (l *lockedBackend) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Close()
}

func (l *lockedBackend) Name() string { return l.b.Name() }

// LastWrite passes on the Pebble backend's figures of its last write (new
// bytes, all bytes); -1 for the files backend, which writes everything.
func (l *lockedBackend) LastWrite() (newBytes, totalBytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lw, ok := l.b.(interface{ LastWrite() (int64, int64) }); ok {
		return lw.LastWrite()
	}
	return -1, -1
}

// live holds the backends of the runs of this process, by absolute state
// folder, so that Savepoint reaches a running pipeline's backend (Pebble
// locks its folder against a second opening). It is the one piece of
// process-wide state: a state folder belongs to one run at a time.
var live = struct {
	mu sync.Mutex
	m  map[string]*lockedBackend
}{m: map[string]*lockedBackend{}}

// useBackend opens stateDir's backend for a run and registers it; release
// unregisters and closes it.
func useBackend(stateDir, backend string) (b *lockedBackend, release func() error, err error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, nil, err
	}
	live.mu.Lock()
	defer live.mu.Unlock()
	if live.m[abs] != nil {
		return nil, nil, fmt.Errorf("state folder %s is in use by another pipeline of this process", stateDir)
	}
	sb, err := openBackend(stateDir, backend)
	if err != nil {
		return nil, nil, err
	}
	b = &lockedBackend{b: sb}
	live.m[abs] = b
	return b, func() error {
		live.mu.Lock()
		delete(live.m, abs)
		live.mu.Unlock()
		return b.Close()
	}, nil
}

// SavepointDir is where the savepoint name of stateDir goes, or an error
// for a name that is not a plain folder name.
func SavepointDir(stateDir, name string) (string, error) {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return "", fmt.Errorf("savepoint name %q: want a plain folder name", name)
	}
	return filepath.Join(stateDir, "savepoints", name), nil
}

// Savepoint copies the newest intact checkpoint of stateDir into dir (which
// must not exist) in the files format: a named, portable snapshot to start
// a run from (Options.FromSavepoint), with any worker count and either
// backend. It returns the checkpoint's id. Checkpoints are consistent cuts,
// so it can run while the pipeline runs: in the same process (the admin
// endpoint) it goes through the run's backend; from another process it
// works with the files backend, while Pebble's lock refuses it (use the
// running wsp's admin endpoint then).
func Savepoint(stateDir, dir string) (uint64, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return 0, err
	}
	live.mu.Lock()
	b := live.m[abs]
	live.mu.Unlock()
	if b != nil {
		return b.SaveLatest(dir)
	}
	if !nonEmpty(backendDir(stateDir, BackendPebble)) && !nonEmpty(backendDir(stateDir, BackendFiles)) {
		return 0, fmt.Errorf("state: no checkpoints in %s", stateDir)
	}
	sb, err := openBackend(stateDir, "")
	if err != nil {
		if nonEmpty(backendDir(stateDir, BackendPebble)) {
			return 0, fmt.Errorf("%w (if a wsp runs on this state folder, ask it: POST /savepoint?name=NAME on its admin address)", err)
		}
		return 0, err
	}
	defer sb.Close()
	return sb.SaveLatest(dir)
}
