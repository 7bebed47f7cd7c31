package progress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire"
)

// DefaultSocketPath is where beatwrap puts the progress socket of agent id
// when --socket is not given: $XDG_RUNTIME_DIR/beatwrap/<id>.sock, else
// /tmp/beatwrap-<uid>/<id>.sock. When that path is longer than a unix socket
// address holds (a long id), the file is named after a hash of the id
// instead: the first 16 hex digits of its SHA-256, then .sock.
func DefaultSocketPath(id string) string {
	dir := filepath.Join("/tmp", "beatwrap-"+strconv.Itoa(os.Getuid()))
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		dir = filepath.Join(xdg, "beatwrap")
	}
	if path := filepath.Join(dir, id+".sock"); len(path) <= maxSocketPath {
		return path
	}
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".sock")
}

// Client is one connection to a progress socket, for an agent that connects
// once and keeps reporting. It is safe for concurrent use; reports are sent
// one at a time.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	err  error // set once the connection is unusable, which closes it
}

// Dial connects to the progress socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to progress socket: %w", err)
	}
	return &Client{conn: c, r: bufio.NewReaderSize(c, wire.MaxLineSize)}, nil
}

// Send writes one report and waits for its reply. An error means the report
// may not have arrived, or its reply was lost; a report the server refused is
// a Reply with OK false and a nil error. After an error the Client is closed.
func (c *Client) Send(ctx context.Context, r wire.Report) (wire.Reply, error) {
	line, err := r.Marshal()
	if err != nil {
		return wire.Reply{}, fmt.Errorf("encode report: %w", err)
	}
	return c.roundTrip(ctx, append(line, '\n'))
}

// roundTrip writes one line and reads one reply line.
func (c *Client) roundTrip(ctx context.Context, line []byte) (wire.Reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return wire.Reply{}, c.err
	}
	reply, err := c.exchange(ctx, line)
	if err != nil {
		// A reply may still be on its way; the next one read would be the
		// wrong one, so this connection is done.
		c.err = fmt.Errorf("progress socket connection closed after an error: %w", err)
		c.conn.Close()
	}
	return reply, err
}

func (c *Client) exchange(ctx context.Context, line []byte) (wire.Reply, error) {
	var reply wire.Reply
	if err := c.conn.SetDeadline(time.Time{}); err != nil {
		return reply, fmt.Errorf("set deadline: %w", err)
	}
	// A deadline in the past wakes a blocked read or write once ctx has
	// ended, so the error is the context's and not a timeout of our own.
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.SetDeadline(time.Unix(1, 0))
		close(woken)
	})
	defer func() {
		if !stop() {
			// ctx ended during the exchange: let the past deadline land
			// now rather than in the middle of the next one.
			<-woken
		}
	}()
	if _, err := c.conn.Write(line); err != nil {
		return reply, fmt.Errorf("send report: %w", contextError(ctx, err))
	}
	b, err := c.r.ReadSlice('\n')
	if err != nil {
		return reply, fmt.Errorf("read reply: %w", contextError(ctx, err))
	}
	if bytes.Equal(b, okReply) {
		return wire.Reply{OK: true}, nil
	}
	var raw struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || raw.OK == nil {
		return reply, fmt.Errorf("read reply: not a reply: %.100q", b)
	}
	return wire.Reply{OK: *raw.OK, Error: raw.Error}, nil
}

// contextError prefers the context's reason over the timeout it caused.
func contextError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}

// Close closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil
	}
	c.err = errors.New("progress socket connection closed")
	return c.conn.Close()
}

// Send connects to the progress socket at path, sends one report, waits for
// its reply and disconnects. It is what `beatwrap report` does.
func Send(ctx context.Context, path string, r wire.Report) (wire.Reply, error) {
	c, err := Dial(ctx, path)
	if err != nil {
		return wire.Reply{}, err
	}
	defer c.Close()
	return c.Send(ctx, r)
}
