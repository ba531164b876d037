// Package stubhost is the in-process stand-in for the wsp host that the SDK
// talks to when it is compiled natively (not for wasip1). Package wsptest
// drives it; plugins never import it.
//
// It behaves like the host of ABI v1 for everything a guest can observe:
// phases, limits, error codes and the exact bytes of batches. It holds one
// global "current host", the way a Wasm instance has one host; callers
// serialize access with Mu.
package stubhost

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Phase is what the host is doing with the guest.
type Phase int

// Phases.
const (
	Idle Phase = iota
	Init       // inside wsp_init
	Call       // inside a batch export
)

// Error codes and limits of ABI v1.
const (
	ErrBounds     int32 = -1
	ErrMalformed  int32 = -2
	ErrNotNow     int32 = -3
	ErrTooMany    int32 = -4
	ErrBadRequest int32 = -5

	MaxFields     = 64
	MaxPorts      = 255
	MaxPortName   = 128
	MaxFieldPath  = 1024
	MaxFailLength = 4096
	MaxLogLength  = 64 << 10
	MaxAccSize    = 64 << 10
	MaxResults    = 64 // agg_result fields
)

// LogLine is one line the guest logged.
type LogLine struct {
	Level int32
	Msg   string
}

// Host is the state of one simulated host.
type Host struct {
	Phase  Phase
	Config []byte
	Input  []byte // the staged batch (Call phase)
	// Write receives each batch_write chunk (Call phase); its result is
	// batch_write's. The chunk is only valid during the call.
	Write   func(chunk []byte) int32
	Fields  []string // declared field paths
	AccSize int      // agg_size; 0 when not called
	// StateVersion is what state_version declared (nil: not called).
	StateVersion *uint32
	Results      []byte   // agg_result's declaration; nil when not called
	Ports        []string // Ports[k-1] is port k
	FailMsg      string
	Logs         []LogLine
	// OnLog, if set, sees each line as it is logged.
	OnLog func(LogLine)
}

// Mu serializes use of the stub (and of the guest's global state).
var Mu sync.Mutex

// Current is the host the guest talks to; nil outside a harness call.
var Current *Host

// Exports are the guest's entry points, installed by package wsp.
type Exports struct {
	ABI       func() int64
	Init      func() int32
	Process   func(n int32) int32
	Key       func(n int32) int32
	Timestamp func(n int32) int32
	// OnTimer is wsp_on_timer (n fired timers).
	OnTimer func(n int32) int32
	// AggAdd, AggMerge and AggFinish are wsp_agg_add, wsp_agg_merge and
	// wsp_agg_finish (n groups).
	AggAdd    func(n int32) int32
	AggMerge  func(n int32) int32
	AggFinish func(n int32) int32
	// Reset forgets the guest's registrations (for the SDK's own tests).
	Reset func()
}

// Guest holds the exports of the linked SDK.
var Guest Exports

func cur() *Host {
	if Current == nil {
		panic("wsp: no host: natively, a plugin runs only under wsptest")
	}
	return Current
}

// BatchRead is batch_read.
func BatchRead(p []byte) int32 {
	h := cur()
	if h.Phase != Call {
		return ErrNotNow
	}
	if len(h.Input) <= len(p) {
		copy(p, h.Input)
	}
	return int32(len(h.Input))
}

// BatchWrite is batch_write.
func BatchWrite(p []byte) int32 {
	h := cur()
	if h.Phase != Call || h.Write == nil {
		return ErrNotNow
	}
	return h.Write(p)
}

// ConfigRead is config_read.
func ConfigRead(p []byte) int32 {
	h := cur()
	if len(h.Config) <= len(p) {
		copy(p, h.Config)
	}
	return int32(len(h.Config))
}

// DeclareFields is declare_fields.
func DeclareFields(p []byte) int32 {
	h := cur()
	if h.Phase != Init {
		return ErrNotNow
	}
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		path := string(bytes.TrimSpace(line))
		if path == "" {
			continue
		}
		if len(path) > MaxFieldPath {
			return ErrBadRequest
		}
		if len(h.Fields) >= MaxFields {
			return ErrTooMany
		}
		h.Fields = append(h.Fields, path)
	}
	return int32(len(h.Fields))
}

// Port is port.
func Port(name string) int32 {
	h := cur()
	if h.Phase != Init {
		return ErrNotNow
	}
	if name == "" || len(name) > MaxPortName {
		return ErrBadRequest
	}
	for i, p := range h.Ports {
		if p == name {
			return int32(i + 1)
		}
	}
	if len(h.Ports) >= MaxPorts {
		return ErrTooMany
	}
	h.Ports = append(h.Ports, name)
	return int32(len(h.Ports))
}

// StateVersion is state_version.
func StateVersion(v uint32) int32 {
	h := cur()
	if h.Phase != Init {
		return ErrNotNow
	}
	if h.StateVersion != nil && *h.StateVersion != v {
		return ErrBadRequest
	}
	h.StateVersion = &v
	return 0
}

// AggSize is agg_size.
func AggSize(size int) int32 {
	h := cur()
	if h.Phase != Init {
		return ErrNotNow
	}
	if size < 1 || size > MaxAccSize || h.AccSize != 0 && h.AccSize != size {
		return ErrBadRequest
	}
	h.AccSize = size
	return 0
}

// AggResult is agg_result: it checks the declaration as the host does
// (type u8 in 1..3 | name_len u8 >= 1 | name: UTF-8 without control
// characters, unique; 1 to MaxResults fields) and returns the number of
// fields. The same declaration again is allowed, another is not.
func AggResult(p []byte) int32 {
	h := cur()
	if h.Phase != Init {
		return ErrNotNow
	}
	if len(p) == 0 {
		return ErrBadRequest
	}
	var names []string
	for q := 0; q < len(p); {
		if len(names) == MaxResults {
			return ErrTooMany
		}
		if len(p)-q < 2 || p[q] < 1 || p[q] > 3 || p[q+1] == 0 || int(p[q+1]) > len(p)-q-2 {
			return ErrBadRequest
		}
		name := string(p[q+2 : q+2+int(p[q+1])])
		q += 2 + len(name)
		if !utf8.ValidString(name) || strings.IndexFunc(name, func(r rune) bool { return r < 0x20 }) >= 0 ||
			slices.Contains(names, name) {
			return ErrBadRequest
		}
		names = append(names, name)
	}
	if h.Results != nil && !bytes.Equal(h.Results, p) {
		return ErrBadRequest
	}
	h.Results = bytes.Clone(p)
	return int32(len(names))
}

// Log is log.
func Log(level int32, msg string) {
	h := Current
	if len(msg) > MaxLogLength {
		msg = msg[:MaxLogLength]
	}
	l := LogLine{Level: level, Msg: msg}
	if h == nil {
		return // logged from init() before any harness: dropped
	}
	h.Logs = append(h.Logs, l)
	if h.OnLog != nil {
		h.OnLog(l)
	}
}

// Fail is fail.
func Fail(msg string) {
	if len(msg) > MaxFailLength {
		msg = msg[:MaxFailLength]
	}
	cur().FailMsg = msg
}
