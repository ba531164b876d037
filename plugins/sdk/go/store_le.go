//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package wsp

import "unsafe"

// store64 writes v little-endian at b[off:off+8], which the caller has
// checked is inside b. On little-endian machines (Wasm among them) it is one
// store, which keeps the Output fast paths small enough to inline.
func store64(b []byte, off int, v uint64) {
	*(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), off)) = v
}

// load64 reads a little-endian uint64 at b[off:off+8], which the caller has
// checked is inside b.
func load64(b []byte, off int) uint64 {
	return *(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), off))
}

// load32 reads a little-endian uint32 at b[off:off+4], which the caller has
// checked is inside b.
func load32(b []byte, off int) uint32 {
	return *(*uint32)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), off))
}

// store32 writes v little-endian at b[off:off+4], which the caller has
// checked is inside b.
func store32(b []byte, off int, v uint32) {
	*(*uint32)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), off)) = v
}
