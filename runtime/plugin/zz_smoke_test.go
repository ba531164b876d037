package plugin
import ("context";"testing";"bytes";"github.com/wsp-project/wsp/runtime/record")
func BenchmarkSmoke(b *testing.B) {
	e, _ := NewEngine("")
	m, err := e.LoadFile(context.Background(), "/tmp/smoke/noop.wasm", Options{})
	if err != nil { b.Fatal(err) }
	in, _ := m.Instance(context.Background())
	buf := bytes.Repeat([]byte("x"), 100*1024)
	bt := &record.Batch{}
	for i := 0; i < 1024; i++ { bt.Records = append(bt.Records, record.Record{Value: buf[i*100:(i+1)*100], Time: int64(i), Flags: record.HasTime}) }
	var res Result
	b.ResetTimer()
	for i := 0; i < b.N; i++ { if err := in.Call(context.Background(), bt, &res); err != nil { b.Fatal(err) } }
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/rec")
}
func BenchmarkEmpty(b *testing.B) {
	e, _ := NewEngine("")
	m, err := e.LoadFile(context.Background(), "/tmp/smoke/noop.wasm", Options{})
	if err != nil { b.Fatal(err) }
	in, _ := m.Instance(context.Background())
	bt := &record.Batch{}
	var res Result
	b.ResetTimer()
	for i := 0; i < b.N; i++ { if err := in.Call(context.Background(), bt, &res); err != nil { b.Fatal(err) } }
}
