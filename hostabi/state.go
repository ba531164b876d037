package hostabi

import (
	"encoding/binary"
	"fmt"
)

// Keyed state and timers (ABI.md, "Keyed state and timers"; features
// FeatureState and FeatureTimers).
//
// A module with FeatureState runs as a keyed step: the host hands over,
// with each batch, the state of the batch's keys in a state section after
// the records (BatchFlagState in the batch header), and the module writes
// its changes back as output entries of KindState, which the host applies
// after the call returned successfully (a failed call changes nothing).
//
//	state section = keys u32 | entry * keys | slot u32 * count | size u32
//	entry         = key_len u32 | key | value_len u32 (NoValue: none) | value |
//	                map_n u32 | (mk_len u32 | mk | mv_len u32 | mv) * map_n |
//	                list_n u32 | (len u32 | item) * list_n
//	slot[i]       = the entry (0..keys-1) of the key of record i
//	size          = the section's size before this field, so that a reader
//	                finds the section from the batch's end before it walks
//	                the records
//
// A state entry (KindState) is a record header with Kind = KindState and
// Port = the StateOp; Index names the input record (or timer) whose key
// the operation applies to; Time is the time-to-live in milliseconds of
// processing time for OpValueSet, OpMapPut and OpListAppend (0: none) and
// the timer's time for the timer operations. Key is the map key of the
// map operations, Value the value of OpValueSet, OpMapPut and
// OpListAppend; other parts are empty and Flags is 0.
//
// wsp_on_timer(n) gets a batch of n timers in the same format as
// wsp_process: each a record with the timer's key (FlagHasKey), its time
// (FlagHasTime), Port = the TimerDomain, no value, no meta, and FlagNotJSON
// when fields are declared; then the state section of their keys.

// FuncStateVersion is state_version(version i32) -> i32: during wsp_init
// only: the version of the module's state layout, stored with the state;
// a run refuses stored state of another version unless told to reset it.
// Returns 0 or a negative Err code.
const FuncStateVersion = "state_version"

// KindState is an output entry that changes the keyed state or the timers
// of the key of input Index (Port holds the StateOp).
const KindState uint8 = 3

// BatchFlagState in the batch header's flags: a state section follows the
// records.
const BatchFlagState uint32 = 1

// NoValue as a value length in the state section: the key has no value.
const NoValue = 0xFFFFFFFF

// StateOp is the operation of a KindState entry.
type StateOp uint16

// State operations.
const (
	OpValueSet        StateOp = 1  // value := Value (TTL: Time ms, 0 none)
	OpValueClear      StateOp = 2  // no value
	OpMapPut          StateOp = 3  // map[Key] := Value (TTL: Time ms)
	OpMapDelete       StateOp = 4  // delete map[Key]
	OpMapClear        StateOp = 5  // empty map
	OpListAppend      StateOp = 6  // list += Value (TTL of the item: Time ms)
	OpListClear       StateOp = 7  // empty list
	OpTimerSet        StateOp = 8  // event-time timer at Time (ms)
	OpTimerDelete     StateOp = 9  // remove the event-time timer at Time
	OpProcTimerSet    StateOp = 10 // processing-time timer at Time (unix ms)
	OpProcTimerDelete StateOp = 11 // remove the processing-time timer at Time
	OpClear           StateOp = 12 // value, map and list of the key (not its timers)
	maxStateOp                = OpClear
)

var opNames = [...]string{"", "value_set", "value_clear", "map_put", "map_delete", "map_clear",
	"list_append", "list_clear", "timer_set", "timer_delete", "proc_timer_set", "proc_timer_delete", "clear"}

func (op StateOp) String() string {
	if op >= 1 && op <= maxStateOp {
		return opNames[op]
	}
	return fmt.Sprintf("op %d", uint16(op))
}

// Timer reports whether op sets or deletes a timer (FeatureTimers).
func (op StateOp) Timer() bool { return op >= OpTimerSet && op <= OpProcTimerDelete }

// TimerDomain says which clock a timer follows (the Port of a timer input).
type TimerDomain uint16

const (
	EventTime      TimerDomain = 0 // fires when the watermark reaches it
	ProcessingTime TimerDomain = 1 // fires when the processing clock reaches it
)

// checkStateEntry checks what only a KindState entry must satisfy.
func checkStateEntry(h *Header) string {
	op := StateOp(h.Port)
	switch {
	case op < 1 || op > maxStateOp:
		return fmt.Sprintf("unknown state operation %d", h.Port)
	case h.Flags != 0:
		return "a state entry has no flags"
	case h.MetaLen != 0:
		return "a state entry has no meta"
	case h.KeyLen != 0 && op != OpMapPut && op != OpMapDelete:
		return fmt.Sprintf("%s takes no key part", op)
	case h.ValueLen != 0 && op != OpValueSet && op != OpMapPut && op != OpListAppend:
		return fmt.Sprintf("%s takes no value", op)
	case h.Time < 0 && !op.Timer():
		return fmt.Sprintf("%s: negative time-to-live %d", op, h.Time)
	case h.Time != 0 && !op.Timer() && op != OpValueSet && op != OpMapPut && op != OpListAppend:
		return fmt.Sprintf("%s takes no time (got %d)", op, h.Time)
	}
	return ""
}

// StateSection builds a state section (host side; a guest SDK parses it).
type StateSection struct {
	B    []byte
	keys uint32
}

// Reset starts a new section in s.B's space.
func (s *StateSection) Reset() {
	s.B = append(s.B[:0], 0, 0, 0, 0)
	s.keys = 0
}

// Key starts the entry of key with its value (hasValue false: none).
func (s *StateSection) Key(key, value []byte, hasValue bool) {
	s.keys++
	s.B = binary.LittleEndian.AppendUint32(s.B, uint32(len(key)))
	s.B = append(s.B, key...)
	if !hasValue {
		s.B = binary.LittleEndian.AppendUint32(s.B, NoValue)
		return
	}
	s.B = binary.LittleEndian.AppendUint32(s.B, uint32(len(value)))
	s.B = append(s.B, value...)
}

// Count appends a u32 (the number of map entries or list items next).
func (s *StateSection) Count(n int) { s.B = binary.LittleEndian.AppendUint32(s.B, uint32(n)) }

// Bytes appends len u32 | b (a map key, map value or list item).
func (s *StateSection) Bytes(b []byte) {
	s.B = binary.LittleEndian.AppendUint32(s.B, uint32(len(b)))
	s.B = append(s.B, b...)
}

// Slots ends the section with each record's entry number and the size.
func (s *StateSection) Slots(slots []uint32) {
	binary.LittleEndian.PutUint32(s.B, s.keys)
	for _, v := range slots {
		s.B = binary.LittleEndian.AppendUint32(s.B, v)
	}
	s.B = binary.LittleEndian.AppendUint32(s.B, uint32(len(s.B)))
}
