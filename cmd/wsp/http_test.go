package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
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
	srv, addr, err := serveHTTP("127.0.0.1:0", m, "")
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

// TestHTTPSavepoint: POST /savepoint?name=N copies the newest checkpoint of
// the state folder; a second one of that name, a bad name, or a GET are
// refused.
func TestHTTPSavepoint(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	pipe := filepath.Join(dir, "p.yaml")
	conf := `
input:
  generate: { count: 50, interval: "", mapping: 'root = {"k": "a", "v": 1, "ts": count("s")}' }
pipeline:
  - key: { field: k }
  - event_time: { field: ts }
  - window: { tumbling: { size: 10s }, aggregates: { total: sum(v) } }
output:
  drop: {}
`
	if err := os.WriteFile(pipe, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runWSP(t, "run", "--http-addr", "off", "--cache-dir", cacheDir, "--state-dir", state, pipe); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	srv, addr, err := serveHTTP("127.0.0.1:0", wsp.NewMetrics(), state)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + addr.String() + "/savepoint"
	post := func(q string) (int, string) {
		resp, err := http.Post(base+q, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("?name=first"); code != 200 || !strings.Contains(body, `"checkpoint":`) {
		t.Fatalf("savepoint: %d %s", code, body)
	}
	if m, _ := filepath.Glob(filepath.Join(state, "savepoints", "first", "chk-*", "MANIFEST")); len(m) != 1 {
		t.Fatalf("savepoint on disk: %v", m)
	}
	for _, c := range []struct {
		q    string
		code int
	}{{"?name=first", 409}, {"?name=../x", 400}, {"", 400}} {
		if code, body := post(c.q); code != c.code {
			t.Errorf("POST %s = %d %s, want %d", c.q, code, body, c.code)
		}
	}
	if code, _ := get(t, base+"?name=x"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET = %d", code)
	}
}
