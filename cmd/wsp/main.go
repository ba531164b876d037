// Command wsp runs stream pipelines whose logic is WebAssembly.
//
//	wsp run [flags] pipeline.yaml
//	wsp plugin inspect module.wasm|go-source-folder
//	wsp version
//
// Runtime settings come, in order of precedence, from flags, WSP_*
// environment variables, an optional config file (--config), and defaults.
// This is the only package that reads them (viper stays here).
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the pipeline failed while running
	exitUsage   = 2 // bad flags, settings or pipeline file
	exitInspect = 3 // plugin inspect: not a valid module
)

func main() {
	// Go cannot preempt a Wasm guest's compiled code: while a guest runs it
	// holds its processor. With one processor (a one-CPU machine or
	// container limit) a long guest call would stall the inputs, outputs,
	// checkpoints and the garbage collector until it returned or hit its
	// time limit; a second one lets them go on (the OS shares the CPU).
	// An explicit GOMAXPROCS setting is left as it is.
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the CLI and returns the exit code (tests call it directly).
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "savepoint":
		return cmdSavepoint(args[1:], stdout, stderr)
	case "plugin":
		if len(args) >= 2 && args[1] == "inspect" {
			return cmdInspect(args[2:], stdout, stderr)
		}
		fmt.Fprintln(stderr, "usage: wsp plugin inspect <module.wasm | go-source-folder>")
		return exitUsage
	case "version", "--version":
		fmt.Fprintln(stdout, "wsp", version)
		return exitOK
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "wsp: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

const version = "0.1.0-dev (host ABI v1)"

func usage(w io.Writer) {
	fmt.Fprint(w, `wsp: stream processing with WebAssembly functions

Commands:
  wsp run [flags] <pipeline.yaml>      run a pipeline (see wsp run --help)
  wsp savepoint --state-dir DIR <name> copy the newest checkpoint to DIR/savepoints/<name>
  wsp plugin inspect <module>          show a module's ABI version, features, exports
  wsp version                          print the version
`)
}
