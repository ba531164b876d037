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
	dsum := sha256.Sum256([]byte(abs))
	manifest := filepath.Join(cacheDir, "plugins", filepath.Base(abs)+"-"+hex.EncodeToString(dsum[:6])+".manifest")
	if out, ok := fresh(manifest); ok {
		return out, nil
	}
	key, files, err := cacheKey(ctx, abs)
	if err != nil {
		return "", fmt.Errorf("gobuild %s: %w", dir, err)
	}
	out := filepath.Join(cacheDir, "plugins", filepath.Base(abs)+"-"+key[:16]+".wasm")
	if st, err := os.Stat(out); err == nil && st.Size() > 0 {
		writeManifest(manifest, out, files)
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
	writeManifest(manifest, out, files)
	return out, nil
}

// A manifest remembers what a build read, so that an unchanged plugin is
// found without running `go list` (which takes about a second): the go
// binary, every source file (size and modification time) and every package
// folder's list of .go files (a new file in a folder is a change).
type manifest struct {
	Wasm  string
	Files []fileStamp
	Dirs  map[string]string
}

type fileStamp struct {
	Path  string
	Size  int64
	Mtime int64
}

func stamp(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{Path: path, Size: st.Size(), Mtime: st.ModTime().UnixNano()}, nil
}

func goFiles(dir string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	sort.Strings(m)
	return strings.Join(m, "\n")
}

func writeManifest(path, wasm string, files []string) {
	m := manifest{Wasm: wasm, Dirs: map[string]string{}}
	if gobin, err := exec.LookPath("go"); err == nil {
		files = append(files, gobin)
	}
	for _, f := range files {
		st, err := stamp(f)
		if err != nil {
			return
		}
		m.Files = append(m.Files, st)
		if strings.HasSuffix(f, ".go") {
			m.Dirs[filepath.Dir(f)] = goFiles(filepath.Dir(f))
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	_ = os.WriteFile(path, b, 0o644)
}

// fresh reports the cached module of a manifest whose inputs are unchanged.
func fresh(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	var m manifest
	if json.Unmarshal(b, &m) != nil || m.Wasm == "" {
		return "", false
	}
	if _, err := os.Stat(m.Wasm); err != nil {
		return "", false
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", false
	}
	seenGo := false
	for _, f := range m.Files {
		st, err := stamp(f.Path)
		if err != nil || st != f {
			return "", false
		}
		seenGo = seenGo || f.Path == gobin
	}
	for d, names := range m.Dirs {
		if goFiles(d) != names {
			return "", false
		}
	}
	return m.Wasm, seenGo
}

func wasmEnv() []string {
	env := os.Environ()
	return append(env, "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
}

type listed struct {
	Dir        string
	Standard   bool
	GoFiles    []string
	EmbedFiles []string
	Module     *struct{ GoMod string }
	Error      *struct{ Err string }
	ImportPath string
}

func cacheKey(ctx context.Context, dir string) (string, []string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-json=Dir,Standard,GoFiles,EmbedFiles,Module,Error,ImportPath", ".")
	cmd.Dir = dir
	cmd.Env = wasmEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", nil, fmt.Errorf("go list: %v\n%s", err, strings.TrimSpace(stderr.String()))
	}
	h := sha256.New()
	ver, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go env: %w", err)
	}
	fmt.Fprintf(h, "%s|wasip1|wasm|c-shared|trimpath\n", bytes.TrimSpace(ver))
	dec := json.NewDecoder(&stdout)
	var files []string
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("go list output: %w", err)
		}
		if p.Error != nil {
			return "", nil, fmt.Errorf("package %s: %s", p.ImportPath, p.Error.Err)
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
	var uniq []string
	for _, f := range files {
		if len(uniq) > 0 && uniq[len(uniq)-1] == f {
			continue
		}
		uniq = append(uniq, f)
		b, err := os.ReadFile(f)
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), uniq, nil
}
