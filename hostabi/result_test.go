package hostabi

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

// TestResultDecl covers the declaration parser's codes and the format of
// names that need escaping.
func TestResultDecl(t *testing.T) {
	d := AppendResultDecl(nil, []ResultField{{Name: "a", Type: ResultInt}, {Name: "é", Type: ResultBool}})
	f, err := ParseResultDecl(d)
	if err != nil || len(f) != 2 || f[1].Name != "é" || f[1].Type != ResultBool {
		t.Fatalf("%v %v", f, err)
	}
	for _, c := range []struct {
		decl []byte
		code int32
	}{
		{nil, ErrBadRequest},
		{[]byte{1}, ErrBadRequest},
		{[]byte{0, 1, 'a'}, ErrBadRequest},
		{[]byte{1, 1, 0xff}, ErrBadRequest},
	} {
		_, err := ParseResultDecl(c.decl)
		var de *ResultDeclError
		if !errors.As(err, &de) || de.Code != c.code {
			t.Errorf("% x: %v", c.decl, err)
		}
	}
	var many []ResultField
	for i := 0; i < 65; i++ {
		many = append(many, ResultField{Name: strings.Repeat("x", i+1), Type: ResultFloat})
	}
	_, err = ParseResultDecl(AppendResultDecl(nil, many))
	var de *ResultDeclError
	if !errors.As(err, &de) || de.Code != ErrTooMany {
		t.Fatalf("65 fields: %v", err)
	}
	if _, err := ParseResultDecl(AppendResultDecl(nil, many[:64])); err != nil {
		t.Fatalf("64 fields: %v", err)
	}
}

// TestAppendJSONFloat: encoding/json's text for floats (and the window
// results'), null for NaN and ±Inf.
func TestAppendJSONFloat(t *testing.T) {
	for _, c := range []struct {
		x    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "-0"}, {1, "1"}, {-3, "-3"}, {1.5, "1.5"}, {0.1, "0.1"},
		{1e15, "1000000000000000"}, {1e20, "100000000000000000000"}, {1e21, "1e+21"},
		{1e-6, "0.000001"}, {1e-7, "1e-7"}, {-1.5e-10, "-1.5e-10"}, {1e-300, "1e-300"},
		{math.NaN(), "null"}, {math.Inf(1), "null"}, {math.Inf(-1), "null"},
		{math.MaxFloat64, "1.7976931348623157e+308"}, {9.223372036854775807e18, "9223372036854776000"}, {-9.223372036854775807e18, "-9223372036854776000"},
	} {
		if got := string(AppendJSONFloat(nil, c.x)); got != c.want {
			t.Errorf("%v: %s, want %s", c.x, got, c.want)
		}
		f := NewResultFormat([]ResultField{{Name: "x", Type: ResultFloat}})
		var v [8]byte
		binary.LittleEndian.PutUint64(v[:], math.Float64bits(c.x))
		if got, err := f.Append(nil, v[:]); err != nil || string(got) != `{"x":`+c.want+`}` {
			t.Errorf("%v: Append %s %v", c.x, got, err)
		}
	}
}
