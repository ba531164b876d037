// Command sandbox is a test guest that reports what the sandbox lets it see:
// for each record it emits {"now_ms":..,"home":..,"file":..}, where now_ms is
// the guest's wall clock, home the HOME variable and file whether it could
// open /etc/hostname. The host's tests check the defaults (deterministic
// clock, no environment, no file system) and the grants.
package main

import (
	"os"
	"strconv"
	"time"

	wsp "github.com/wsp-project/wsp/plugins/sdk/go"
)

func init() {
	wsp.Process(func(r *wsp.Record, out *wsp.Output) {
		_, err := os.ReadFile("/etc/hostname")
		line := `{"now_ms":` + strconv.FormatInt(time.Now().UnixMilli(), 10) +
			`,"home":` + strconv.Quote(os.Getenv("HOME")) +
			`,"file":` + strconv.FormatBool(err == nil) + `}`
		out.Emit(r, []byte(line))
	})
}

func main() {}
