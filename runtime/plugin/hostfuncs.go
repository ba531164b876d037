package plugin

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wsp-project/wsp/hostabi"
	"github.com/wsp-project/wsp/runtime/record"
)

type hostSig struct {
	params, results []api.ValueType
	fn              api.GoModuleFunc
}

var (
	i32 = api.ValueTypeI32

	// hostSignatures is the import surface of ABI v1 (hostabi/ABI.md).
	hostSignatures = map[string]hostSig{
		hostabi.FuncBatchRead:     {[]api.ValueType{i32, i32}, []api.ValueType{i32}, hostBatchRead},
		hostabi.FuncBatchWrite:    {[]api.ValueType{i32, i32}, []api.ValueType{i32}, hostBatchWrite},
		hostabi.FuncConfigRead:    {[]api.ValueType{i32, i32}, []api.ValueType{i32}, hostConfigRead},
		hostabi.FuncDeclareFields: {[]api.ValueType{i32, i32}, []api.ValueType{i32}, hostDeclareFields},
		hostabi.FuncPort:          {[]api.ValueType{i32, i32}, []api.ValueType{i32}, hostPort},
		hostabi.FuncLog:           {[]api.ValueType{i32, i32, i32}, nil, hostLog},
		hostabi.FuncFail:          {[]api.ValueType{i32, i32}, nil, hostFail},
		hostabi.FuncAggSize:       {[]api.ValueType{i32}, []api.ValueType{i32}, hostAggSize},
		hostabi.FuncAggResult:     {[]api.ValueType{i32, i32}, []api.ValueType{i32}, hostAggResult},
		hostabi.FuncStateVersion:  {[]api.ValueType{i32}, []api.ValueType{i32}, hostStateVersion},
	}
)

func hostNames() string {
	var names []string
	for n := range hostSignatures {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// instantiateHost registers the wsp host module in rt.
func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(hostabi.ImportModule)
	for name, s := range hostSignatures {
		b.NewFunctionBuilder().WithGoModuleFunction(s.fn, s.params, s.results).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("host module: %w", err)
	}
	return nil
}

// abort records a fault and stops the guest: the panic unwinds through
// wazero, which returns it as the export call's error; guard() reports
// in.fault instead of wazero's wrapped text.
func (in *Instance) abort(format string, args ...any) {
	in.fault = fmt.Errorf(format, args...)
	panic(in.fault)
}

func instanceOf(ctx context.Context) *Instance {
	return ctx.Value(instKey{}).(*Instance)
}

// view returns guest memory [ptr, ptr+n) or aborts the call.
func (in *Instance) view(mod api.Module, fn string, ptr, n uint32) []byte {
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		in.abort("%s: pointer %#x length %d is outside guest memory (%d bytes)", fn, ptr, n, mod.Memory().Size())
	}
	return b
}

func hostBatchRead(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	if in.callDeadline != 0 && time.Now().UnixNano() > in.callDeadline {
		// A rewritten guest calls batch_read(0, 0) every few loop
		// iterations so the deadline is checked here (interrupt.go).
		in.timedOut.Store(true)
		in.abort("did not return within %s", in.m.opts.Timeout)
	}
	ptr, capacity := uint32(stack[0]), uint32(stack[1])
	if in.phase != phaseCall || in.in == nil && in.agg == nil {
		stack[0] = errCode(hostabi.ErrNotNow)
		return
	}
	var size uint64
	if in.agg != nil {
		size = in.encodeAgg(in.view(mod, hostabi.FuncBatchRead, ptr, capacity))
	} else {
		size = in.encode(in.view(mod, hostabi.FuncBatchRead, ptr, capacity))
	}
	if size > 1<<31-1 {
		in.abort("%s: the batch needs %d bytes, more than the ABI's 2 GiB", hostabi.FuncBatchRead, size)
	}
	stack[0] = size
}

func hostConfigRead(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	ptr, capacity := uint32(stack[0]), uint32(stack[1])
	cfg := in.m.opts.Config
	if uint32(len(cfg)) <= capacity && len(cfg) > 0 {
		copy(in.view(mod, hostabi.FuncConfigRead, ptr, uint32(len(cfg))), cfg)
	}
	stack[0] = uint64(uint32(len(cfg)))
}

func hostDeclareFields(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	if in.phase != phaseInit {
		stack[0] = errCode(hostabi.ErrNotNow)
		return
	}
	b := in.view(mod, hostabi.FuncDeclareFields, uint32(stack[0]), uint32(stack[1]))
	var add []string
	for _, line := range strings.Split(string(b), "\n") {
		if !validFieldPath(line) || len(line) > hostabi.MaxFieldPath {
			stack[0] = errCode(hostabi.ErrBadRequest)
			return
		}
		for _, p := range append(in.declFields, add...) {
			if p == line {
				stack[0] = errCode(hostabi.ErrBadRequest)
				return
			}
		}
		add = append(add, line)
	}
	if len(in.declFields)+len(add) > hostabi.MaxFields {
		stack[0] = errCode(hostabi.ErrTooMany)
		return
	}
	in.declFields = append(in.declFields, add...)
	stack[0] = uint64(uint32(len(in.declFields)))
}

// validFieldPath accepts dotted paths without empty segments or surrounding
// white space.
func validFieldPath(p string) bool {
	if p == "" || strings.TrimSpace(p) != p {
		return false
	}
	for _, seg := range strings.Split(p, ".") {
		if seg == "" {
			return false
		}
	}
	return true
}

func hostPort(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	if in.phase != phaseInit {
		stack[0] = errCode(hostabi.ErrNotNow)
		return
	}
	name := string(in.view(mod, hostabi.FuncPort, uint32(stack[0]), uint32(stack[1])))
	if name == "" || len(name) > hostabi.MaxPortName {
		stack[0] = errCode(hostabi.ErrBadRequest)
		return
	}
	for i, p := range in.declPorts {
		if p == name {
			stack[0] = uint64(uint32(i + 1))
			return
		}
	}
	if len(in.declPorts) >= hostabi.MaxPorts {
		stack[0] = errCode(hostabi.ErrTooMany)
		return
	}
	in.declPorts = append(in.declPorts, name)
	stack[0] = uint64(uint32(len(in.declPorts)))
}

// hostAggSize is agg_size: during wsp_init, the module's accumulators are
// fixed-size. Declaring the same size again is allowed, another is not.
func hostAggSize(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	if in.phase != phaseInit {
		stack[0] = errCode(hostabi.ErrNotNow)
		return
	}
	size := int64(int32(stack[0]))
	if size < 1 || size > hostabi.MaxAccSize || in.declAccSize != 0 && int64(in.declAccSize) != size {
		stack[0] = errCode(hostabi.ErrBadRequest)
		return
	}
	in.declAccSize = int(size)
	stack[0] = 0
}

// hostAggResult is agg_result: during wsp_init, the typed fields of the
// aggregate's result. The same declaration again is allowed, another is
// not. A refused declaration returns a negative code and fails the load
// with the reason (instantiate), whatever wsp_init returns.
func hostAggResult(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	if in.phase != phaseInit {
		stack[0] = errCode(hostabi.ErrNotNow)
		return
	}
	b := in.view(mod, hostabi.FuncAggResult, uint32(stack[0]), uint32(stack[1]))
	fields, err := hostabi.ParseResultDecl(b)
	if err == nil && in.declResults != nil && !equalResults(fields, in.declResults) {
		err = &hostabi.ResultDeclError{Field: -1, Code: hostabi.ErrBadRequest,
			Reason: "declared again with other fields than the first call"}
	}
	if err != nil {
		if in.declErr == nil {
			in.declErr = fmt.Errorf("%s refused: %w", hostabi.FuncAggResult, err)
		}
		code := hostabi.ErrBadRequest
		if de, ok := err.(*hostabi.ResultDeclError); ok {
			code = de.Code
		}
		stack[0] = errCode(code)
		return
	}
	in.declResults = fields
	stack[0] = uint64(uint32(len(fields)))
}

func equalResults(a, b []hostabi.ResultField) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	level := int32(stack[0])
	n := uint32(stack[2])
	if n > hostabi.MaxLogLength {
		n = hostabi.MaxLogLength
	}
	msg := string(in.view(mod, hostabi.FuncLog, uint32(stack[1]), n))
	l := in.m.opts.Logger
	args := []any{"module", in.m.name}
	switch level {
	case hostabi.LogDebug:
		l.Debug(msg, args...)
	case hostabi.LogInfo:
		l.Info(msg, args...)
	case hostabi.LogWarn:
		l.Warn(msg, args...)
	default:
		l.Error(msg, args...)
	}
}

func hostFail(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	n := uint32(stack[1])
	if n > hostabi.MaxFailLength {
		n = hostabi.MaxFailLength
	}
	in.failMsg = string(in.view(mod, hostabi.FuncFail, uint32(stack[0]), n))
}

// hostBatchWrite parses an output chunk and materialises its records into
// host memory (the Result's batches), so nothing points into guest memory
// after it returns.
func hostBatchWrite(ctx context.Context, mod api.Module, stack []uint64) {
	in := instanceOf(ctx)
	if in.phase == phaseCall && in.agg != nil {
		in.writeAgg(in.view(mod, hostabi.FuncBatchWrite, uint32(stack[0]), uint32(stack[1])))
		stack[0] = 0
		return
	}
	if in.phase != phaseCall || in.res == nil {
		stack[0] = errCode(hostabi.ErrNotNow)
		return
	}
	chunk := in.view(mod, hostabi.FuncBatchWrite, uint32(stack[0]), uint32(stack[1]))
	inputs := in.in.Records
	rd := hostabi.NewOutputReader(chunk, uint32(len(inputs)), uint16(len(in.m.ports)))
	if in.stateSec != nil {
		rd.AllowState()
	}
	var o hostabi.OutputRecord
	for {
		ok, err := rd.Next(&o)
		if err != nil {
			in.abort("%s: %w", hostabi.FuncBatchWrite, err)
		}
		if !ok {
			break
		}
		idx := int64(o.Index)
		if idx < in.lastIndex {
			in.abort("%s: output for input %d follows output for input %d: records must be emitted in ascending index order",
				hostabi.FuncBatchWrite, idx, in.lastIndex)
		}
		in.lastIndex = idx
		if o.Kind == hostabi.KindState {
			in.addStateUpdate(&o) // a state change is not output: it does not count as emitted
			continue
		}
		if idx != in.lastEmitted {
			in.emitted++
			in.lastEmitted = idx
		}
		src := &inputs[o.Index]
		if o.Kind == hostabi.KindFail {
			in.res.Failed = append(in.res.Failed, Failure{Index: int(o.Index), Reason: string(o.Value)})
			continue
		}
		out := &in.res.Ports[o.Port]
		if cap(out.Records) == 0 {
			out.Records = make([]record.Record, 0, len(inputs))
		}
		if o.Kind == hostabi.KindKeep {
			out.Records = append(out.Records, *src)
			continue
		}
		out.Records = append(out.Records, record.Record{})
		r := &out.Records[len(out.Records)-1]
		r.Pos = src.Pos
		f := o.Flags
		if f&hostabi.FlagSameKey != 0 {
			r.Key = src.Key
			r.Flags |= src.Flags & record.HasKey
		} else if f&hostabi.FlagHasKey != 0 {
			r.Key = out.CopyBytes(o.Key)
			r.Flags |= record.HasKey
		}
		if f&hostabi.FlagSameValue != 0 {
			r.Value = src.Value
		} else {
			r.Value = out.CopyBytes(o.Value)
		}
		if f&hostabi.FlagSameTime != 0 {
			r.Time = src.Time
			r.Flags |= src.Flags & record.HasTime
		} else if f&hostabi.FlagHasTime != 0 {
			r.Time = o.Time
			r.Flags |= record.HasTime
		}
		if f&hostabi.FlagSameMeta != 0 {
			r.Meta = src.Meta
		} else if len(o.Meta) > 0 {
			it := hostabi.NewMetaIter(o.Meta)
			for {
				k, v, ok, err := it.Next()
				if err != nil {
					in.abort("%s: output record for input %d: %w", hostabi.FuncBatchWrite, o.Index, err)
				}
				if !ok {
					break
				}
				r.Meta = append(r.Meta, record.KV{Key: string(k), Value: out.CopyBytes(v)})
			}
		}
	}
	stack[0] = 0
}

// errCode renders a negative ABI error code as an i32 result.
func errCode(c int32) uint64 { return uint64(uint32(c)) }
