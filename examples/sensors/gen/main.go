// Command gen writes deterministic sensor readings (JSON lines) for the
// sensors example; see package sensorgen for the data shape.
//
//	go run ./examples/sensors/gen -n 1000000 -seed 1 -o /tmp/sensors-1m.jsonl
//
// The same -n and -seed always give byte-identical output. Without -o the
// readings go to stdout.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/wsp-project/wsp/examples/sensors/gen/sensorgen"
)

func main() {
	n := flag.Int("n", 30000, "number of readings")
	seed := flag.Uint64("seed", 1, "PRNG seed")
	out := flag.String("o", "", "output file (default stdout)")
	flag.Parse()
	if *n < 0 {
		fmt.Fprintln(os.Stderr, "gen: -n must be >= 0")
		os.Exit(2)
	}

	var w io.Writer = os.Stdout
	var f *os.File
	if *out != "" && *out != "-" {
		var err error
		if f, err = os.Create(*out); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		w = f
	}
	if err := sensorgen.Write(w, *n, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
