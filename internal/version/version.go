// Package version holds the build's version, set by the linker
// (-X github.com/beatwrap/beatwrap/internal/version.Version=...).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release this binary was built from.
var Version = "dev"

// String describes the build for `version` subcommands.
func String(program string) string {
	v := Version
	if v == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("%s %s (%s, %s/%s)", program, v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
