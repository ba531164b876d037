package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestSettingsPrecedence: flags beat WSP_* variables, which beat the config
// file, which beats the defaults.
func TestSettingsPrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "wsp.yaml")
	if err := os.WriteFile(cfg, []byte("workers: 3\nbatch-size: 77\nlog-level: warn\nhttp-addr: off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, rest, err := loadSettings([]string{"p.yaml"}, io.Discard)
	if err != nil || s.Workers != 0 || s.BatchSize != 1024 || s.LogLevel != "info" || s.HTTPAddr != "127.0.0.1:4195" || rest[0] != "p.yaml" {
		t.Fatalf("defaults: %+v %v %v", s, rest, err)
	}
	s, _, err = loadSettings([]string{"--config", cfg, "p.yaml"}, io.Discard)
	if err != nil || s.Workers != 3 || s.BatchSize != 77 || s.LogLevel != "warn" || s.HTTPAddr != "off" {
		t.Fatalf("config file: %+v %v", s, err)
	}
	t.Setenv("WSP_WORKERS", "5")
	t.Setenv("WSP_CONFIG", cfg)
	s, _, err = loadSettings([]string{"p.yaml"}, io.Discard)
	if err != nil || s.Workers != 5 || s.BatchSize != 77 {
		t.Fatalf("env over file: %+v %v", s, err)
	}
	s, _, err = loadSettings([]string{"--workers", "7", "p.yaml"}, io.Discard)
	if err != nil || s.Workers != 7 || s.BatchSize != 77 {
		t.Fatalf("flag over env: %+v %v", s, err)
	}
	if _, _, err := loadSettings([]string{"--config", filepath.Join(t.TempDir(), "nope.yaml"), "p.yaml"}, io.Discard); err == nil {
		t.Fatal("a missing config file was accepted")
	}
}

// TestResetStateList: --reset-state takes a comma list from the flag, the
// environment and the config file alike.
func TestResetStateList(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "wsp.yaml")
	if err := os.WriteFile(cfg, []byte("reset-state: [x, y]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--reset-state", "a,b", "p.yaml"}, "", "[a b]"},
		{[]string{"--reset-state", "a", "--reset-state", "b", "p.yaml"}, "", "[a b]"},
		{[]string{"p.yaml"}, "a, b", "[a b]"},
		{[]string{"--config", cfg, "p.yaml"}, "", "[x y]"},
	} {
		t.Setenv("WSP_RESET_STATE", c.env)
		s, _, err := loadSettings(c.args, io.Discard)
		if err != nil || fmt.Sprint(s.ResetState) != c.want {
			t.Errorf("%v with WSP_RESET_STATE=%q: %v %v, want %s", c.args, c.env, s.ResetState, err, c.want)
		}
	}
}
