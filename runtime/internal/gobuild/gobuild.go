// Package gobuild turns a Go plugin source folder into a .wasm module with
// the local Go toolchain (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared),
// caching the result by a hash of everything the build reads.
package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// IsSource reports whether path is a folder holding Go files.
func IsSource(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	m, _ := filepath.Glob(filepath.Join(path, "*.go"))
	return len(m) > 0
}

var mu sync.Mutex // one build at a time: builds share the Go caches and 2 cores

// Build compiles the plugin in dir into cacheDir and returns the .wasm path.
// The cache key covers the Go version, the build settings and the contents
// of every non-standard-library package file the plugin depends on, so an
// edit anywhere in its dependencies rebuilds it.
func Build(ctx context.Context, dir, cacheDir string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	key, err := cacheKey(ctx, abs)
	if err != nil {
		return "", fmt.Errorf("gobuild %s: %w", dir, err)
	}
	out := filepath.Join(cacheDir, "plugins", filepath.Base(abs)+"-"+key[:16]+".wasm")
	if st, err := os.Stat(out); err == nil && st.Size() > 0 {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("gobuild: %w", err)
	}
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-trimpath", "-o", tmp, ".")
	cmd.Dir = abs
	cmd.Env = wasmEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("gobuild %s: go build failed: %v\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("gobuild: %w", err)
	}
	return out, nil
}

func wasmEnv() []string {
	env := os.Environ()
	return append(env, "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
}

type listed struct {
	Dir            string
	Standard       bool
	GoFiles        []string
	EmbedFiles     []string
	Module         *struct{ GoMod string }
	Error          *struct{ Err string }
	DepsErrors     []*struct{ Err string }
	ImportPath     string
	IgnoredGoFiles []string
}

func cacheKey(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-json=Dir,Standard,GoFiles,EmbedFiles,Module,Error,DepsErrors,ImportPath", ".")
	cmd.Dir = dir
	cmd.Env = wasmEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go list: %v\n%s", err, strings.TrimSpace(stderr.String()))
	}
	h := sha256.New()
	ver, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	fmt.Fprintf(h, "%s|wasip1|wasm|c-shared|trimpath\n", bytes.TrimSpace(ver))
	dec := json.NewDecoder(&stdout)
	var files []string
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("go list output: %w", err)
		}
		if p.Error != nil {
			return "", fmt.Errorf("package %s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Standard {
			continue
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			files = append(files, filepath.Join(p.Dir, f))
		}
		if p.Module != nil && p.Module.GoMod != "" {
			files = append(files, p.Module.GoMod)
			sum := strings.TrimSuffix(p.Module.GoMod, ".mod") + ".sum"
			if _, err := os.Stat(sum); err == nil {
				files = append(files, sum)
			}
		}
	}
	sort.Strings(files)
	prev := ""
	for _, f := range files {
		if f == prev {
			continue
		}
		prev = f
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
