//go:build !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package wsp

// store64 writes v little-endian at b[off:off+8].
func store64(b []byte, off int, v uint64) {
	le.PutUint64(b[off:], v)
}

// load64 reads a little-endian uint64 at b[off:off+8].
func load64(b []byte, off int) uint64 { return le.Uint64(b[off:]) }

// load32 reads a little-endian uint32 at b[off:off+4].
func load32(b []byte, off int) uint32 { return le.Uint32(b[off:]) }

// store32 writes v little-endian at b[off:off+4].
func store32(b []byte, off int, v uint32) { le.PutUint32(b[off:], v) }
