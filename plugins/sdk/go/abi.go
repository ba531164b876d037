package wsp

// The numbers and layouts of the wsp host ABI v1 (hostabi/ABI.md in the wsp
// repository). They are repeated here, unexported, because the SDK depends on
// nothing but the standard library; a conformance test in the wsp module
// checks that both sides agree byte for byte.

const (
	abiVersion = 1

	featureFields    = 1 << 0
	featurePorts     = 1 << 1
	featureAggregate = 1 << 2

	batchHeaderSize  = 8
	recordHeaderSize = 32

	kindEmit = 0
	kindFail = 1
	kindKeep = 2 // an 8-byte record: index u32 | port u16 | kind u8 | flags u8 (0)

	keepRecordSize = 8

	flagHasTime = 1 << 0
	flagHasKey  = 1 << 1
	flagNotJSON = 1 << 2
	// flagSame* are the Same bits (SameKey...), which are the ABI's bits.

	tagMissing = 0
	tagNull    = 1
	tagFalse   = 2
	tagTrue    = 3
	tagInt     = 4
	tagFloat   = 5
	tagString  = 6
	tagRaw     = 7

	// Host error results.
	errBounds     = -1
	errMalformed  = -2
	errNotNow     = -3
	errTooMany    = -4
	errBadRequest = -5

	// Host limits.
	maxFields    = 64
	maxPorts     = 255
	maxPortName  = 128
	maxFieldPath = 1024

	// flushAt is the output size after which the SDK hands a chunk to the
	// host before continuing (batch_write may be called several times).
	flushAt = 1 << 20
)

// errName describes a negative host result.
func errName(code int32) string {
	switch code {
	case errBounds:
		return "out of bounds"
	case errMalformed:
		return "malformed"
	case errNotNow:
		return "not allowed now"
	case errTooMany:
		return "a limit was reached"
	case errBadRequest:
		return "bad argument"
	}
	return "error " + itoa(int64(code))
}

// itoa formats i in decimal (strconv without pulling it into cold paths
// everywhere; the SDK avoids fmt to keep guest binaries small).
func itoa(i int64) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	u := uint64(i)
	if i < 0 {
		u = uint64(-i)
	}
	for u > 0 {
		n--
		b[n] = byte('0' + u%10)
		u /= 10
	}
	if i < 0 {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
