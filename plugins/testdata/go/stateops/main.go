// Command stateops is a test guest for keyed state and timers: each
// record's value is a command on its key's state, and the guest answers
// every record (and every fired timer) with a dump of that key's state
// after the command, so a test sees exactly what the host handed over and
// kept. Commands (fields separated by ':'):
//
//	set:V  ttl:V:MS  unset  put:K:V  putttl:K:V:MS  del:K  mclear
//	app:V  appttl:V:MS  lclear  clear  timer:T  untimer:T  ptimer:T
//	unptimer:T  get  panic (fails the whole batch)
//	rekey:K (emits "get" under key K instead of a dump)
//
// A fired timer dumps as "timer e|p T <dump>"; when the key's value is
// "boom" the timer call panics, and when it is "untimerT" the timer deletes
// the key's event-time timer at T first.
package main

import (
	"bytes"
	"slices"
	"strconv"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

func init() {
	wsp.UseState(7)
	wsp.Process(process)
	wsp.OnTimer(onTimer)
}

func main() {}

func num(b []byte) int64 {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		panic("bad number " + string(b))
	}
	return n
}

func process(r *wsp.Record, out *wsp.Output) {
	s := r.State()
	f := bytes.Split(r.Value(), []byte(":"))
	switch string(f[0]) {
	case "set":
		s.SetValue(f[1])
	case "ttl":
		s.SetValueTTL(f[1], num(f[2]))
	case "unset":
		s.ClearValue()
	case "put":
		s.MapPut(f[1], f[2])
	case "putttl":
		s.MapPutTTL(f[1], f[2], num(f[3]))
	case "del":
		s.MapDelete(f[1])
	case "mclear":
		s.MapClear()
	case "app":
		s.ListAppend(f[1])
	case "appttl":
		s.ListAppendTTL(f[1], num(f[2]))
	case "lclear":
		s.ListClear()
	case "clear":
		s.Clear()
	case "timer":
		s.SetTimer(num(f[1]))
	case "untimer":
		s.DeleteTimer(num(f[1]))
	case "ptimer":
		s.SetProcTimer(num(f[1]))
	case "unptimer":
		s.DeleteProcTimer(num(f[1]))
	case "get":
	case "panic":
		panic("asked to")
	case "rekey":
		out.EmitRecord(r, &wsp.OutRecord{Same: wsp.SameTime, Key: f[1], HasKey: true, Value: []byte("get")})
		return
	default:
		out.Fail(r, "unknown command "+string(f[0]))
		return
	}
	out.Emit(r, dump(nil, s))
}

func onTimer(t *wsp.Timer, out *wsp.Output) {
	s := t.State()
	v, _ := s.Value()
	if string(v) == "boom" {
		panic("timer boom")
	}
	if t, ok := bytes.CutPrefix(v, []byte("untimer")); ok {
		s.DeleteTimer(num(t))
	}
	at, _ := t.Time()
	d := "e"
	if t.ProcessingTime() {
		d = "p"
	}
	b := []byte("timer " + d + " " + strconv.FormatInt(at, 10) + " ")
	out.EmitRecord(&t.Record, &wsp.OutRecord{Same: wsp.SameKey | wsp.SameTime, Value: dump(b, s)})
}

func dump(b []byte, s *wsp.State) []byte {
	b = append(b, "val="...)
	if v, ok := s.Value(); ok {
		b = append(b, v...)
	} else {
		b = append(b, '-')
	}
	var keys []string
	s.MapEach(func(k, v []byte) bool { keys = append(keys, string(k)); return true })
	slices.Sort(keys)
	b = append(b, " map={"...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		v, _ := s.MapGet([]byte(k))
		b = append(b, k...)
		b = append(b, ':')
		b = append(b, v...)
	}
	b = append(b, "} list=["...)
	for i, it := range s.List() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}
