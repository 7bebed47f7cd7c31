// Command hangagent is an agent for beatwrap's container tests that hangs on
// demand: it reports progress on $BEATWRAP_SOCKET every 100ms, and SIGUSR1
// (which beatwrap, as the container's PID 1, forwards to it from `docker
// kill --signal USR1`) toggles it between working and hung: hung, it stays
// alive and says nothing. It exits 0 on SIGTERM.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var conn net.Conn
	var replies *bufio.Reader
	hung := false
	for n := 1; ; n++ {
		select {
		case sig := <-sigs:
			if sig != syscall.SIGUSR1 {
				fmt.Println("hangagent: stopping")
				return
			}
			hung = !hung
			fmt.Println("hangagent: hung", hung)
		case <-tick.C:
			if hung {
				continue
			}
			if conn == nil {
				c, err := net.Dial("unix", os.Getenv("BEATWRAP_SOCKET"))
				if err != nil {
					continue
				}
				conn, replies = c, bufio.NewReader(c)
			}
			line := fmt.Sprintf("{\"task\":\"step %d\",\"progress\":%d,\"activeTasks\":1}\n", n, n%101)
			conn.SetDeadline(time.Now().Add(time.Second))
			if _, err := conn.Write([]byte(line)); err != nil {
				conn.Close()
				conn = nil
				continue
			}
			if _, err := replies.ReadBytes('\n'); err != nil {
				conn.Close()
				conn = nil
			}
		}
	}
}
