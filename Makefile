# wsp: `make test` runs every test (what CI runs); `make test-long` adds the long soaks.
GO ?= go
export GOFLAGS ?=

.PHONY: all test test-long vet sensors bench-abi bench-sensors bench-windows bench guests check-guests

all: test

vet:
	$(GO) vet ./...
	cd plugins/sdk/go && $(GO) vet ./...

test: vet
	$(GO) test -count=1 -timeout 20m ./...
	cd plugins/sdk/go && $(GO) test -count=1 ./...
	$(GO) test -count=1 ./plugins/testdata/go/sumagg/

# Long forms of the soaks and end-to-end runs (1 M readings, many rounds).
test-long: vet
	WSP_TEST_LONG=1 $(GO) test -count=1 -timeout 60m ./...
	cd plugins/sdk/go && $(GO) test -count=1 ./...
	$(GO) test -count=1 ./plugins/testdata/go/sumagg/

# The sensor example (builds the Go Wasm cleaner itself).
sensors:
	rm -f examples/sensors/out/clean.jsonl examples/sensors/out/errors.jsonl
	$(GO) run ./cmd/wsp run examples/sensors/pipeline.yaml

# Records/s through the Wasm boundary vs native Go (bench/README.md).
bench-abi:
	$(GO) run ./bench/abi -root . -batches 1,64,1024 -count 5 -benchtime 500ms

# Keyed event-time windows on 10 M in-memory records vs a plain Go loop (bench/README.md).
bench-windows:
	$(GO) run ./bench/windows -n 10000000 -count 3

# The sensor pipeline end to end, wsp vs Benthos v4.80.0 on the same 1 M readings.
bench-sensors:
	$(GO) run ./bench/sensors -root . -rounds 2
	$(GO) run ./bench/sensors -root . -rounds 2 -timeout none

bench: bench-abi bench-sensors bench-windows

# Rebuild the hand-written test guests (needs wabt's wat2wasm).
guests:
	$(MAKE) -C plugins/testdata guests

# CI: the checked-in WAT guests must be what their sources build to.
check-guests:
	$(MAKE) -C plugins/testdata wat -B
	git diff --exit-code -- plugins/testdata/wasm
