package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	wsp "github.com/wsp-project/wsp/runtime"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHTTPEndpoints: readiness follows the engine, and the counters are
// served as Prometheus text and JSON.
func TestHTTPEndpoints(t *testing.T) {
	m := wsp.NewMetrics()
	srv, addr, err := serveHTTP("127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + addr.String()
	if code, _ := get(t, base+"/health"); code != 200 {
		t.Errorf("/health = %d", code)
	}
	if code, _ := get(t, base+"/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready before start = %d, want 503", code)
	}
	m.Ready.Store(true)
	m.InputRecords.Add(42)
	if code, _ := get(t, base+"/ready"); code != 200 {
		t.Errorf("/ready while running = %d", code)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "wsp_input_records_total 42") {
		t.Errorf("/metrics:\n%s", body)
	}
	_, body := get(t, base+"/stats")
	var s struct {
		InputRecords int64 `json:"input_records"`
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.InputRecords != 42 {
		t.Errorf("/stats = %s (%v)", body, err)
	}
}
