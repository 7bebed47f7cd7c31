// Command reporter is a child for beatwrap's tests that speaks the progress
// socket itself, the way an agent without `beatwrap report` would: it connects
// to $BEATWRAP_SOCKET once, keeps the connection, and follows its arguments in
// order:
//
//	send:LINE   write LINE and a newline, read the reply; exit 3 unless it is ok
//	wait:PATH   wait until PATH exists
//	sleep:DUR   sleep for a Go duration
//
// It then exits 0.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(steps []string) int {
	path := os.Getenv("BEATWRAP_SOCKET")
	if path == "" {
		fmt.Fprintln(os.Stderr, "reporter: BEATWRAP_SOCKET is not set")
		return 2
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "reporter: %v\n", err)
		return 2
	}
	defer conn.Close()
	replies := bufio.NewReader(conn)
	for _, step := range steps {
		verb, arg, _ := strings.Cut(step, ":")
		switch verb {
		case "send":
			if err := send(conn, replies, arg); err != nil {
				fmt.Fprintf(os.Stderr, "reporter: send %s: %v\n", arg, err)
				return 3
			}
		case "wait":
			for {
				if _, err := os.Stat(arg); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		case "sleep":
			d, err := time.ParseDuration(arg)
			if err != nil {
				fmt.Fprintf(os.Stderr, "reporter: %v\n", err)
				return 2
			}
			time.Sleep(d)
		default:
			fmt.Fprintf(os.Stderr, "reporter: unknown step %q\n", step)
			return 2
		}
	}
	return 0
}

func send(conn net.Conn, replies *bufio.Reader, line string) error {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return err
	}
	b, err := replies.ReadBytes('\n')
	if err != nil {
		return err
	}
	var reply struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return fmt.Errorf("reply %q: %v", b, err)
	}
	if !reply.OK {
		return fmt.Errorf("rejected: %s", reply.Error)
	}
	return nil
}
