// Command testagent is the agent that end-to-end tests run inside
// containers: it reports progress on beatwrap's socket every 100 ms, exits
// 0 on SIGTERM, and refuses to start while a poison file exists (the state a
// restart cannot fix, but a fresh container can).
//
// Environment: BEATWRAP_SOCKET (set by beatwrap), TESTAGENT_POISON (path of
// the poison file, default /poison).
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	poison := os.Getenv("TESTAGENT_POISON")
	if poison == "" {
		poison = "/poison"
	}
	if _, err := os.Stat(poison); err == nil {
		fmt.Fprintf(os.Stderr, "testagent: poison file %s exists, refusing to start\n", poison)
		os.Exit(3)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var conn net.Conn
	n := 0
	for {
		select {
		case <-stop:
			fmt.Println("testagent: stopping")
			return
		case <-tick.C:
			n++
			if conn == nil {
				c, err := net.Dial("unix", os.Getenv("BEATWRAP_SOCKET"))
				if err != nil {
					continue
				}
				conn = c
			}
			line := fmt.Sprintf("{\"task\":\"step %d\",\"progress\":%d,\"activeTasks\":1}\n", n, n%101)
			if _, err := conn.Write([]byte(line)); err != nil {
				conn.Close()
				conn = nil
				continue
			}
			buf := make([]byte, 256)
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := conn.Read(buf); err != nil {
				conn.Close()
				conn = nil
			}
		}
	}
}
