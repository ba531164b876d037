// Package wsptest unit-tests wsp plugins natively, with plain go test and
// no WebAssembly runtime.
//
// The plugin package is compiled for the test's platform; its registrations
// run in init() as in Wasm, and the SDK's host calls go to an in-process
// stub. A Harness plays the host: it encodes input records into the real
// binary batch format (the fields section included, extracted from JSON
// values the way the wsp host does), calls the SDK's real export code, and
// decodes and checks the real output chunks. So a test exercises the same
// SDK code and bytes as the Wasm module; only the plugin's own code is
// compiled for another target.
//
//	func TestDropsDebug(t *testing.T) {
//		h := wsptest.New(t)
//		res := h.Process(wsptest.JSON(`{"level":"debug"}`), wsptest.JSON(`{"level":"info"}`))
//		if len(res.Out) != 1 || res.Out[0].Index != 1 || !reflect.DeepEqual(res.Dropped, []int{0}) {
//			t.Fatalf("got %+v", res)
//		}
//	}
//
// A plugin with keyed state (wsp.UseState) gets its keys' state with each
// Process batch, as from the host; State shows a key's state, FireTimers and
// FireProcTimers fire due timers, and SetNow sets the processing clock.
//
// An aggregate (wsp.Aggregate) is tested with AggAdd, AggMerge and
// AggFinish (one window) or their Groups forms (one call over many
// windows), in the batch formats of the module's accumulator mode:
//
//	acc := h.AggAdd(nil, wsptest.JSON(`{"v":1}`), wsptest.JSON(`{"v":2}`))
//	if got := h.AggFinish(acc); got != `{"count":2,"sum":3}` {
//		t.Fatal(got)
//	}
//
// The plugin's registrations are process-wide, as they are per Wasm
// instance: all harnesses of a test binary run the same plugin, and package
// variables the plugin keeps survive from one harness to the next (a Wasm
// host would start a fresh instance). Harness calls are serialized, so tests
// may run in parallel.
package wsptest

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
	"github.com/wsp-project/wsp/plugins/sdk/go/internal/stubhost"
)

// Record is an input record, and the key, value, time and metadata of an
// output record.
type Record struct {
	// Key is the record key; nil means no key (an empty non-nil slice is an
	// empty key).
	Key []byte
	// Value is the payload, usually JSON.
	Value []byte
	// Time is the event time in ms since the Unix epoch; nil means none.
	Time *int64
	// Meta is the metadata, in order.
	Meta []Meta
}

// Meta is one metadata entry.
type Meta struct {
	Name, Value string
}

// JSON is an input record with value v and nothing else.
func JSON[T ~string | ~[]byte](v T) Record { return Record{Value: []byte(v)} }

// Time returns a pointer to ms, for Record.Time.
func Time(ms int64) *int64 { return &ms }

// Output is one record the plugin emitted, with the parts it took from its
// input (Same) filled in from that input.
type Output struct {
	// Index is the input record it derives from.
	Index int
	// Port is the port name; "" for the main output.
	Port string
	Record
	// Same is the parts the plugin took from the input without copying.
	Same wsp.Same
}

// Failure is an input record the plugin sent to the error output.
type Failure struct {
	Index  int
	Reason string
}

// Result is what one call produced.
type Result struct {
	// Out is every emitted record, all ports, in output order.
	Out []Output
	// Failed lists the failed inputs, in output order.
	Failed []Failure
	// Dropped lists the inputs that produced neither a record nor a failure.
	Dropped []int
	// Chunks are the raw output chunks the SDK passed to batch_write.
	Chunks [][]byte
}

// Values returns the values of Out as strings, in order.
func (r *Result) Values() []string {
	v := make([]string, len(r.Out))
	for i := range r.Out {
		v[i] = string(r.Out[i].Value)
	}
	return v
}

// OnPort returns the records emitted to port ("" for the main output).
func (r *Result) OnPort(port string) []Output {
	var o []Output
	for _, x := range r.Out {
		if x.Port == port {
			o = append(o, x)
		}
	}
	return o
}

// LogLine is a line the plugin logged.
type LogLine struct {
	Level wsp.Level
	Msg   string
}

// Option configures a Harness.
type Option func(*Harness)

// Config sets the step configuration the plugin reads in OnInit (JSON).
func Config[T ~string | ~[]byte](json T) Option {
	return func(h *Harness) { h.host.Config = []byte(json) }
}

// Quiet stops the harness from copying the plugin's log lines to t.Log.
func Quiet() Option {
	return func(h *Harness) { h.quiet = true }
}

// Harness plays the wsp host for the plugin linked into the test binary.
type Harness struct {
	t      testing.TB
	host   stubhost.Host
	quiet  bool
	inited bool
	now    int64               // the processing clock (state.go)
	keys   map[string]*keyData // keyed state (state.go)
}

// New makes a harness reporting to t.
func New(t testing.TB, opts ...Option) *Harness {
	t.Helper()
	h := &Harness{t: t}
	for _, o := range opts {
		o(h)
	}
	if stubhost.Guest.ABI == nil {
		t.Fatal("wsptest: the wsp SDK is not linked into this test")
	}
	h.host.OnLog = func(l stubhost.LogLine) {
		if !h.quiet {
			h.t.Logf("plugin log [%s] %s", levelName(l.Level), l.Msg)
		}
	}
	return h
}

func levelName(l int32) string {
	switch l {
	case 0:
		return "debug"
	case 1:
		return "info"
	case 2:
		return "warn"
	case 3:
		return "error"
	}
	return "level " + strconv.Itoa(int(l))
}

// call runs fn as the host would call an export in phase p.
func (h *Harness) call(p stubhost.Phase, fn func() int32) int32 {
	stubhost.Mu.Lock()
	defer stubhost.Mu.Unlock()
	h.host.Phase = p
	h.host.FailMsg = ""
	stubhost.Current = &h.host
	defer func() {
		stubhost.Current = nil
		h.host.Phase = stubhost.Idle
	}()
	return fn()
}

// ABI returns what the module's wsp_abi reports: the ABI version and the
// feature bits (1 fields, 2 ports, 4 aggregate, 8 state, 16 timers).
func (h *Harness) ABI() (version, features uint32) {
	h.call(stubhost.Idle, func() int32 {
		v := stubhost.Guest.ABI()
		version, features = uint32(v), uint32(uint64(v)>>32)
		return 0
	})
	return version, features
}

// Init runs wsp_init as the host does when it makes an instance: the
// registered fields and ports are declared, then OnInit runs with the
// configuration. It fails the test if wsp_init fails.
func (h *Harness) Init() {
	h.t.Helper()
	if err := h.TryInit(); err != nil {
		h.t.Fatalf("wsp_init: %v", err)
	}
}

// TryInit is Init returning wsp_init's failure (the message the plugin set
// with fail, e.g. OnInit's error) instead of failing the test.
func (h *Harness) TryInit() error {
	version, features := h.ABI()
	if version != 1 {
		return errors.New("wsp_abi: module built for ABI version " + strconv.Itoa(int(version)) + ", want 1")
	}
	if features&^31 != 0 || features&16 != 0 && features&8 == 0 {
		return errors.New("wsp_abi: unknown feature bits " + strconv.FormatUint(uint64(features), 2))
	}
	h.host.Fields, h.host.Ports = nil, nil
	h.host.AccSize, h.host.Results = 0, nil
	rc := h.call(stubhost.Init, stubhost.Guest.Init)
	if rc != 0 {
		h.inited = false
		return failure(h.host.FailMsg, rc)
	}
	h.inited = true
	return nil
}

func failure(msg string, rc int32) error {
	if msg == "" {
		msg = "returned " + strconv.Itoa(int(rc))
	}
	return errors.New(msg)
}

// Fields returns the field paths declared with the host during Init.
func (h *Harness) Fields() []string { return h.host.Fields }

// Ports returns the port names declared with the host during Init; port k
// is Ports()[k-1].
func (h *Harness) Ports() []string { return h.host.Ports }

// Logs returns every line the plugin logged through this harness.
func (h *Harness) Logs() []LogLine {
	l := make([]LogLine, len(h.host.Logs))
	for i, x := range h.host.Logs {
		l[i] = LogLine{Level: wsp.Level(x.Level), Msg: x.Msg}
	}
	return l
}

// Process runs the process function (wsp_process) over one batch made of
// recs, running Init first if it has not run. It fails the test if the
// batch as a whole fails or the output breaks the ABI.
func (h *Harness) Process(recs ...Record) *Result {
	h.t.Helper()
	res, err := h.TryProcess(recs...)
	if err != nil {
		h.t.Fatalf("wsp_process: %v", err)
	}
	return res
}

// TryProcess is Process returning the failure of the whole batch (the
// plugin's fail message, such as "panic: ..." or "no Process function
// registered", or a description of malformed output) instead of failing the
// test.
func (h *Harness) TryProcess(recs ...Record) (*Result, error) {
	return h.run(stubhost.Guest.Process, 0, recs, -1)
}

// Key runs the key function (wsp_key) over one batch: each input yields an
// Output whose Key is the computed key, or a Failure.
func (h *Harness) Key(recs ...Record) *Result {
	h.t.Helper()
	res, err := h.TryKey(recs...)
	if err != nil {
		h.t.Fatalf("wsp_key: %v", err)
	}
	return res
}

// TryKey is Key returning the failure of the whole batch.
func (h *Harness) TryKey(recs ...Record) (*Result, error) {
	return h.run(stubhost.Guest.Key, 1, recs, -1)
}

// Timestamp runs the event-time function (wsp_timestamp) over one batch:
// each input yields an Output whose Time is the computed time, or a Failure.
func (h *Harness) Timestamp(recs ...Record) *Result {
	h.t.Helper()
	res, err := h.TryTimestamp(recs...)
	if err != nil {
		h.t.Fatalf("wsp_timestamp: %v", err)
	}
	return res
}

// TryTimestamp is Timestamp returning the failure of the whole batch.
func (h *Harness) TryTimestamp(recs ...Record) (*Result, error) {
	return h.run(stubhost.Guest.Timestamp, 2, recs, -1)
}

// RawCall is a low-level call for ABI conformance tests: it runs the process
// function over an already encoded batch of n records (header included) and
// returns the raw output chunks, undecoded and unchecked, with the export's
// result and fail message.
func (h *Harness) RawCall(batch []byte, n int) (chunks [][]byte, rc int32, failMsg string) {
	h.t.Helper()
	if !h.inited {
		h.Init()
	}
	h.host.Input = batch
	h.host.Write = func(c []byte) int32 {
		chunks = append(chunks, append([]byte(nil), c...))
		return 0
	}
	rc = h.call(stubhost.Call, func() int32 { return stubhost.Guest.Process(int32(n)) })
	h.host.Input, h.host.Write = nil, nil
	return chunks, rc, h.host.FailMsg
}

// run calls a batch export (function 0 process, 1 key, 2 timestamp); with
// timer >= 0 the records are fired timers of that clock (0 event time, 1
// processing time). A keyed-state plugin gets its keys' state with the
// batch, and its changes are kept when the call succeeds.
func (h *Harness) run(fn func(int32) int32, function int, recs []Record, timer int) (*Result, error) {
	h.t.Helper()
	if !h.inited {
		h.Init()
	}
	if fn == nil {
		return &Result{}, errors.New("the SDK does not export this function")
	}
	input := EncodeBatch(recs, h.host.Fields)
	if timer >= 0 {
		for i, p := 0, batchHeaderSize; i < len(recs); i++ {
			le.PutUint16(input[p+4:], uint16(timer))
			p += recordHeaderSize + int(le.Uint32(input[p+16:])) + int(le.Uint32(input[p+20:])) + int(le.Uint32(input[p+24:])) + int(le.Uint32(input[p+28:]))
		}
	}
	keyed := h.keyed()
	if keyed && function == 0 {
		var err error
		if input, err = h.appendState(input, recs); err != nil {
			return &Result{}, err
		}
	}
	res := &Result{}
	d := decoder{recs: recs, ports: h.host.Ports, res: res, last: -1, seen: make([]bool, len(recs)), state: keyed && function == 0}
	h.host.Input = input
	h.host.Write = d.write
	rc := h.call(stubhost.Call, func() int32 { return fn(int32(len(recs))) })
	h.host.Input, h.host.Write = nil, nil
	if d.err != nil {
		return res, errors.New("malformed output: " + d.err.Error())
	}
	if rc != 0 {
		return res, failure(h.host.FailMsg, rc)
	}
	for i, s := range d.seen {
		if !s {
			res.Dropped = append(res.Dropped, i)
		}
	}
	h.apply(d.ops, func(i int) []byte { return recs[i].Key })
	if function != 0 {
		if err := checkOnePerInput(res, len(recs), function); err != nil {
			return res, err
		}
	}
	return res, nil
}

func checkOnePerInput(res *Result, n, function int) error {
	what := "key"
	if function == 2 {
		what = "time"
	}
	if len(res.Out)+len(res.Failed) != n || len(res.Dropped) != 0 {
		return errors.New("a key or timestamp function must answer each of the " + strconv.Itoa(n) +
			" inputs once; got " + strconv.Itoa(len(res.Out)) + " records and " + strconv.Itoa(len(res.Failed)) + " failures")
	}
	for _, o := range res.Out {
		if o.Port != "" {
			return errors.New("a key or timestamp function may not route to ports")
		}
		if (what == "key" && o.Key == nil) || (what == "time" && o.Time == nil) {
			return errors.New("output for input " + strconv.Itoa(o.Index) + " carries no " + what)
		}
	}
	return nil
}

// String renders o for test failure messages.
func (o Output) String() string {
	var b strings.Builder
	b.WriteString("#")
	b.WriteString(strconv.Itoa(o.Index))
	if o.Port != "" {
		b.WriteString("->" + o.Port)
	}
	if o.Key != nil {
		b.WriteString(" key=" + strconv.Quote(string(o.Key)))
	}
	b.WriteString(" value=" + strconv.Quote(string(o.Value)))
	if o.Time != nil {
		b.WriteString(" time=" + strconv.FormatInt(*o.Time, 10))
	}
	for _, m := range o.Meta {
		b.WriteString(" " + m.Name + "=" + strconv.Quote(m.Value))
	}
	return b.String()
}
