package engine

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsp-project/wsp/runtime/record"
)

// StepCounters count what one step did. For every step:
// In = (inputs that produced output) + Failed + Dropped; Out and Routed count
// output records (a flat map can emit more than it took in).
type StepCounters struct {
	Name    string
	In      atomic.Int64 // records handed to the step
	Out     atomic.Int64 // records emitted on the main port
	Routed  atomic.Int64 // records emitted on named ports
	Failed  atomic.Int64 // records sent to the error output
	Dropped atomic.Int64 // records that produced nothing
}

// OutputCounters count what one output wrote.
type OutputCounters struct {
	Name      string
	Written   atomic.Int64 // records accepted
	Batches   atomic.Int64
	Retries   atomic.Int64 // failed writes that were retried
	Abandoned atomic.Int64 // records given up at a hard stop (nacked)
}

// Metrics are the engine's counters, read concurrently by the HTTP server.
type Metrics struct {
	InputRecords atomic.Int64
	InputBatches atomic.Int64
	InputErrors  atomic.Int64
	Unreadable   atomic.Int64 // input messages sent to the error output unread
	Ready        atomic.Bool

	mu       sync.Mutex
	ckpt     func() CheckpointStats // with checkpoints
	Steps    []StepCounters
	Outputs  []*OutputCounters
	started  time.Time
	finished time.Time
}

// NewMetrics makes an empty set.
func NewMetrics() *Metrics { return &Metrics{} }

func (m *Metrics) init(steps []namedStep, output, errorOutput string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.started = time.Now()
	m.Steps = make([]StepCounters, len(steps))
	for i, s := range steps {
		m.Steps[i].Name = s.Name()
	}
	m.Outputs = []*OutputCounters{{Name: output}, {Name: errorOutput}}
	if m.Outputs[0].Name == "" {
		m.Outputs[0].Name = "output"
	}
	if m.Outputs[1].Name == "" {
		m.Outputs[1].Name = "error_output"
	}
}

func (m *Metrics) addOutput(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Outputs = append(m.Outputs, &OutputCounters{Name: name})
}

func (m *Metrics) output(name string) *OutputCounters {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.Outputs {
		if o.Name == name {
			return o
		}
	}
	o := &OutputCounters{Name: name}
	m.Outputs = append(m.Outputs, o)
	return o
}

func (m *Metrics) finish() {
	m.mu.Lock()
	m.finished = time.Now()
	m.mu.Unlock()
}

// Snapshot is a plain copy of the counters.
type Snapshot struct {
	InputRecords int64               `json:"input_records"`
	InputBatches int64               `json:"input_batches"`
	InputErrors  int64               `json:"input_errors"`
	Unreadable   int64               `json:"unreadable"`
	Elapsed      float64             `json:"elapsed_seconds"`
	Rate         float64             `json:"records_per_second"`
	Steps        []StepSnapshot      `json:"steps"`
	Outputs      []OutputSnapshot    `json:"outputs"`
	Checkpoints  *CheckpointSnapshot `json:"checkpoints,omitempty"`
}

// CheckpointSnapshot is the checkpoints' figures (with a state folder).
type CheckpointSnapshot struct {
	Completed      int64   `json:"completed"`
	Failed         int64   `json:"failed"`
	LastID         uint64  `json:"last_id"`
	MaxPauseMs     float64 `json:"max_pause_ms"`     // the longest a keyed worker stopped to snapshot
	LastDurationMs float64 `json:"last_duration_ms"` // barrier to durable, the last one
	Restored       uint64  `json:"restored"`         // the checkpoint restored at start, 0 for none
	RestoreMs      float64 `json:"restore_ms"`       // how long reading and restoring it took
	// CheckpointedBytes is the size of the checkpoints taken; WrittenBytes
	// what storing them wrote (less with Pebble: only what changed).
	CheckpointedBytes int64 `json:"checkpointed_bytes"`
	WrittenBytes      int64 `json:"written_bytes"`
}

// StepSnapshot is a copy of StepCounters.
type StepSnapshot struct {
	Name    string `json:"name"`
	In      int64  `json:"in"`
	Out     int64  `json:"out"`
	Routed  int64  `json:"routed"`
	Failed  int64  `json:"failed"`
	Dropped int64  `json:"dropped"`
}

// OutputSnapshot is a copy of OutputCounters.
type OutputSnapshot struct {
	Name      string `json:"name"`
	Written   int64  `json:"written"`
	Batches   int64  `json:"batches"`
	Retries   int64  `json:"retries"`
	Abandoned int64  `json:"abandoned"`
}

// Snapshot copies the counters.
func (m *Metrics) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{
		InputRecords: m.InputRecords.Load(),
		InputBatches: m.InputBatches.Load(),
		InputErrors:  m.InputErrors.Load(),
		Unreadable:   m.Unreadable.Load(),
	}
	if !m.started.IsZero() {
		end := m.finished
		if end.IsZero() {
			end = time.Now()
		}
		s.Elapsed = end.Sub(m.started).Seconds()
		if s.Elapsed > 0 {
			s.Rate = float64(s.InputRecords) / s.Elapsed
		}
	}
	for i := range m.Steps {
		c := &m.Steps[i]
		s.Steps = append(s.Steps, StepSnapshot{Name: c.Name, In: c.In.Load(), Out: c.Out.Load(),
			Routed: c.Routed.Load(), Failed: c.Failed.Load(), Dropped: c.Dropped.Load()})
	}
	for _, o := range m.Outputs {
		s.Outputs = append(s.Outputs, OutputSnapshot{Name: o.Name, Written: o.Written.Load(),
			Batches: o.Batches.Load(), Retries: o.Retries.Load(), Abandoned: o.Abandoned.Load()})
	}
	if m.ckpt != nil {
		c := m.ckpt()
		s.Checkpoints = &CheckpointSnapshot{Completed: c.Completed, Failed: c.Failed, LastID: c.LastID,
			MaxPauseMs: float64(c.MaxPause.Microseconds()) / 1000, LastDurationMs: float64(c.LastDuration.Microseconds()) / 1000,
			Restored: c.Restored, RestoreMs: float64(c.RestoreTime.Microseconds()) / 1000,
			CheckpointedBytes: c.BytesCheckpointed, WrittenBytes: c.BytesWritten}
	}
	return s
}

// errorRecord is the JSON line written to the error output for a failed record.
type errorRecord struct {
	Error    string `json:"error"`
	Step     string `json:"step"`
	Source   string `json:"source"`
	Position int64  `json:"position"`
	Key      string `json:"key,omitempty"`
	Time     *int64 `json:"time,omitempty"`
	Record   string `json:"record"`
}

// errorLine renders a failed record as one JSON line: what was wrong
// (error), which step said so, and where the record came from (source and
// position: the line number for line inputs, the message number otherwise).
func errorLine(dst []byte, src record.Source, r *record.Record, step, reason string) []byte {
	e := errorRecord{Error: reason, Step: step, Source: src.String(), Position: r.Pos, Record: string(r.Value)}
	if r.Flags&record.HasKey != 0 {
		e.Key = string(r.Key)
	}
	if r.Flags&record.HasTime != 0 {
		t := r.Time
		e.Time = &t
	}
	b, _ := json.Marshal(e)
	return append(dst, b...)
}
