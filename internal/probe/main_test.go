package probe

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// helperEnv, when set, makes the test binary a helper process instead of
// running tests: "alloc" holds 200 MiB of touched memory, "spin" keeps one
// core busy. Either ends by itself after helperLife, should the test fail
// to kill it.
const helperEnv = "BEATWRAP_PROBE_HELPER"

const helperLife = 60 * time.Second

func TestMain(m *testing.M) {
	switch mode := os.Getenv(helperEnv); mode {
	case "":
		os.Exit(m.Run())
	case "alloc":
		b := make([]byte, 200<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		time.Sleep(helperLife)
		runtime.KeepAlive(b)
	case "spin":
		var n uint64
		for end := time.Now().Add(helperLife); time.Now().Before(end); {
			for i := 0; i < 1_000_000; i++ {
				n += uint64(i)
			}
		}
		runtime.KeepAlive(n)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", helperEnv, mode)
		os.Exit(2)
	}
	os.Exit(0)
}
