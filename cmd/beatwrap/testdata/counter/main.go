// Command counter is an agent for beatwrap's checkpoint tests: it counts
// from where its last checkpoint says it stopped up to N, one number per
// step, and checkpoints its counter on the progress socket after each one.
//
//	counter N STEP LOG
//
// It resumes from $BEATWRAP_CHECKPOINT ({"n":K}: K is done), else from 0.
// For each number i it sleeps STEP (the work), appends "i" to LOG (the work
// is done), then sends {"checkpoint":{"n":i}} and waits for the reply, so a
// kill between the two does i twice: once before, once after. At start it
// appends "start K pid P" to LOG. It exits 0 after N. Like the e2e test
// agent, it exits 1 at once when /poison exists (a container that restarting
// cannot fix).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: counter N STEP LOG")
		return 2
	}
	if _, err := os.Stat("/poison"); err == nil {
		fmt.Fprintln(os.Stderr, "counter: poisoned")
		return 1
	}
	n, err := strconv.Atoi(args[0])
	step, err2 := time.ParseDuration(args[1])
	if err != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "counter: bad N or STEP")
		return 2
	}
	log, err := os.OpenFile(args[2], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		return 2
	}
	var cp struct{ N int }
	if s := os.Getenv("BEATWRAP_CHECKPOINT"); s != "" {
		if err := json.Unmarshal([]byte(s), &cp); err != nil {
			fmt.Fprintf(os.Stderr, "counter: BEATWRAP_CHECKPOINT %q: %v\n", s, err)
			return 2
		}
	}
	fmt.Fprintf(log, "start %d pid %d\n", cp.N, os.Getpid())
	conn, err := net.Dial("unix", os.Getenv("BEATWRAP_SOCKET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		return 2
	}
	replies := bufio.NewReader(conn)
	for i := cp.N + 1; i <= n; i++ {
		time.Sleep(step)
		fmt.Fprintf(log, "%d\n", i)
		fmt.Fprintf(conn, "{\"checkpoint\":{\"n\":%d},\"task\":\"count\",\"progress\":%d}\n", i, 100*i/n)
		reply, err := replies.ReadString('\n')
		if err != nil || reply != "{\"ok\":true}\n" {
			fmt.Fprintf(os.Stderr, "counter: reply %q, %v\n", reply, err)
			return 3
		}
	}
	return 0
}
