package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero/api"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/record"
)

// Keyed state and timers (hostabi/state.go, ABI.md "Keyed state and
// timers"). The plugin host only carries the bytes: the caller (the keyed
// step, runtime/internal/ops/wasmstate.go) owns the state, encodes the
// state section of a batch's keys, and applies the StateUpdates a call
// returns. A call that fails returns no updates, so state changes with a
// call's output or not at all.

// StateUpdate is one KindState entry a call wrote: Op applies to the key
// of input Index (a record, or a timer in CallTimers). Key and Value are
// copies the caller may keep until the next call on the instance.
type StateUpdate struct {
	Index int
	Op    hostabi.StateOp
	Time  int64 // TTL in ms (set, put, append) or the timer's time
	Key   []byte
	Value []byte
}

// StateVersion is the state layout version the module declared with
// state_version in wsp_init (0 when it declared none).
func (m *Module) StateVersion() uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stateVersion
}

// CallState runs wsp_process over b with the state section st (its keys'
// state and each record's slot, hostabi.StateSection) after the records.
// The module must have FeatureState. Updates are in res.State.
func (in *Instance) CallState(ctx context.Context, b *record.Batch, st []byte, res *Result) error {
	in.stateSec, in.timers = st, false
	defer func() { in.stateSec = nil }()
	return in.call(ctx, b, res, hostabi.ExportProcess, in.fn)
}

// CallTimers runs wsp_on_timer over the timers in b (each record: the
// timer's key and time), all of clock dom, with the state section st of
// their keys. The module must have FeatureTimers.
func (in *Instance) CallTimers(ctx context.Context, b *record.Batch, dom hostabi.TimerDomain, st []byte, res *Result) error {
	in.stateSec, in.timers, in.timerDomain = st, true, dom
	defer func() { in.stateSec, in.timers = nil, false }()
	return in.call(ctx, b, res, hostabi.ExportOnTimer, in.timerFn) // (call instantiates a closed instance)
}

// hostStateVersion is state_version: during wsp_init, the version of the
// module's state layout. Declaring another version than before is refused.
func hostStateVersion(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	if in.phase != phaseInit {
		stack[0] = errCode(hostabi.ErrNotNow)
		return
	}
	v := uint32(stack[0])
	if in.declStateVersion != nil && *in.declStateVersion != v {
		stack[0] = errCode(hostabi.ErrBadRequest)
		return
	}
	in.declStateVersion = &v
	stack[0] = 0
}

// addStateUpdate keeps a KindState entry of the running call.
func (in *Instance) addStateUpdate(o *hostabi.OutputRecord) {
	op := hostabi.StateOp(o.Port)
	if op.Timer() && in.feats&hostabi.FeatureTimers == 0 {
		in.abort("%s: %s from a module without the timers feature", hostabi.FuncBatchWrite, op)
	}
	res := in.res
	u := StateUpdate{Index: int(o.Index), Op: op, Time: o.Time}
	if len(o.Key) > 0 {
		u.Key = res.stateBytes(o.Key)
	}
	if len(o.Value) > 0 {
		u.Value = res.stateBytes(o.Value)
	}
	res.State = append(res.State, u)
}

// stateBytes copies b into the result's arena for state bytes.
func (r *Result) stateBytes(b []byte) []byte {
	if cap(r.stateArena)-len(r.stateArena) < len(b) {
		r.stateArena = make([]byte, 0, max(64<<10, 2*len(b)))
	}
	n := len(r.stateArena)
	r.stateArena = append(r.stateArena, b...)
	return r.stateArena[n:len(r.stateArena):len(r.stateArena)]
}

// checkStateShape checks a state or timers module against its use.
func (m *Module) checkStateShape(feats hostabi.Feature) error {
	if feats&(hostabi.FeatureState|hostabi.FeatureTimers) == 0 {
		return nil
	}
	if m.opts.Function != Process {
		return fmt.Errorf("a module with keyed state or timers runs as a process function, not as %q", m.opts.Function)
	}
	if feats&hostabi.FeatureTimers != 0 {
		if feats&hostabi.FeatureState == 0 {
			return errors.New("the timers feature needs the state feature (timers belong to keys)")
		}
		if _, ok := m.exports[hostabi.ExportOnTimer]; !ok {
			return fmt.Errorf("the timers feature is set but %s is not exported", hostabi.ExportOnTimer)
		}
	}
	return nil
}

var errNoTimers = errors.New("module has no timers feature")
