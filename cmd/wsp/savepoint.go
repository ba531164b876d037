package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	wsp "github.com/wsp-project/wsp/runtime"
)

// cmdSavepoint is `wsp savepoint --state-dir DIR <name>`: it copies the
// newest intact checkpoint of DIR into DIR/savepoints/<name>, a portable
// snapshot that `wsp run --state-dir ... --from-savepoint DIR/savepoints/<name>`
// starts from (with any --workers). It may run while wsp runs.
func cmdSavepoint(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("wsp savepoint", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", "", "the state folder of the run (its --state-dir)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: wsp savepoint --state-dir DIR <name>")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if *stateDir == "" || fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	dir, err := wsp.SavepointDir(*stateDir, fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "wsp savepoint:", err)
		return exitUsage
	}
	id, err := wsp.Savepoint(*stateDir, dir)
	if err != nil {
		fmt.Fprintln(stderr, "wsp savepoint:", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "savepoint %s: checkpoint %d\n", dir, id)
	return exitOK
}
