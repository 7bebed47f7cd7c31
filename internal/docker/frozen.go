package docker

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
)

// A container whose first process cannot act on the stop signal gains
// nothing from a grace period: the engine would wait it out, then SIGKILL.
// Two such cases show in the Engine API's top (ps run by the engine on its
// host, so it works for a remote engine too):
//
//   - the process is stopped (ps state T, or t under a tracer): SIGSTOP, a
//     debugger, a frozen sidecar. A stopped process does not run its
//     handlers; only SIGKILL reaches it.
//   - it has no handler for the stop signal: the kernel drops a signal
//     without a handler that is sent to the first process of a PID
//     namespace from outside it (pid_namespaces(7)), so docker stop of such
//     a container always takes its whole timeout.
//
// A process that merely runs (or sleeps, or is busy) keeps its grace.

// topArgs is what Engine.Top asks ps for; topArgsPlain is the fallback for
// a ps without signal masks (busybox).
var (
	topArgs      = []string{"-o", "pid,stat,caught"}
	topArgsPlain = []string{"-o", "pid,stat"}
)

// noGraceReason reads a top answer for the process with host pid pid and
// says why it needs no grace, or "" when it may use one. stopSignal is the
// container's stop signal (empty: SIGTERM).
func noGraceReason(titles []string, procs [][]string, pid int, stopSignal string) string {
	col := func(name string) int {
		for i, t := range titles {
			if strings.EqualFold(strings.TrimSpace(t), name) {
				return i
			}
		}
		return -1
	}
	pidCol, statCol, caughtCol := col("PID"), col("STAT"), col("CAUGHT")
	if pidCol < 0 || statCol < 0 {
		return ""
	}
	want := strconv.Itoa(pid)
	for _, p := range procs {
		if pidCol >= len(p) || strings.TrimSpace(p[pidCol]) != want || statCol >= len(p) {
			continue
		}
		stat := strings.TrimSpace(p[statCol])
		if stat != "" && (stat[0] == 'T' || stat[0] == 't') {
			return "its first process is stopped (state " + stat + ")"
		}
		if caughtCol >= 0 && caughtCol < len(p) {
			mask, err := strconv.ParseUint(strings.TrimSpace(p[caughtCol]), 16, 64)
			sig := signalNumber(stopSignal)
			// SIGKILL and SIGSTOP cannot be caught, and need no handler.
			if err == nil && sig > 0 && sig != int(syscall.SIGKILL) && sig != int(syscall.SIGSTOP) && mask&(1<<(sig-1)) == 0 {
				return "its first process has no handler for signal " + strconv.Itoa(sig) + ", which the kernel therefore drops"
			}
		}
		return ""
	}
	return ""
}

// signalNumber parses a container's StopSignal ("SIGTERM", "TERM", "15");
// empty means SIGTERM, and 0 a signal it does not know.
func signalNumber(s string) int {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return int(syscall.SIGTERM)
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return n
	}
	s = strings.TrimPrefix(s, "SIG")
	// The signals a stop signal is set to in practice; numbers are Linux's.
	names := map[string]int{
		"HUP": 1, "INT": 2, "QUIT": 3, "ABRT": 6, "KILL": 9, "USR1": 10,
		"USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "CONT": 18,
		"STOP": 19, "TSTP": 20, "WINCH": 28, "PWR": 30,
	}
	if strings.HasPrefix(s, "RTMIN+") {
		if n, err := strconv.Atoi(s[len("RTMIN+"):]); err == nil {
			return 34 + n
		}
	}
	return names[s]
}

// stopTimeout is the stop timeout to give a container: its agent's grace,
// unless its first process cannot use one (then none at all). When the
// engine cannot say, the grace stands.
func (d *Engine) stopTimeout(ctx context.Context, info container.InspectResponse, grace time.Duration) *int {
	if info.State == nil || !info.State.Running || info.State.Paused || info.State.Pid <= 0 {
		return stopTimeout(grace)
	}
	stopSignal := ""
	if info.Config != nil {
		stopSignal = info.Config.StopSignal
	}
	titles, procs, err := d.engine.Top(ctx, info.ID, topArgs)
	if err != nil {
		// A ps without signal masks (busybox) still shows the state.
		titles, procs, err = d.engine.Top(ctx, info.ID, topArgsPlain)
	}
	if err != nil {
		return stopTimeout(grace)
	}
	if why := noGraceReason(titles, procs, info.State.Pid, stopSignal); why != "" {
		d.log.Info("stopping without grace: "+why, "container", short(info.ID), "pid", info.State.Pid)
		zero := 0
		return &zero
	}
	return stopTimeout(grace)
}
