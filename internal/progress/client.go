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
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beatwrap/beatwrap/internal/wire/sockline"
)

// DefaultSocketPath is where beatwrap puts the progress socket of agent id
// when --socket is not given: $XDG_RUNTIME_DIR/beatwrap/<id>.sock, else
// /tmp/beatwrap-<uid>/<id>.sock. When that path is longer than a unix socket
// address holds (a long id), the file is named after a hash of the id
// instead: the first 16 hex digits of its SHA-256, then .sock.
func DefaultSocketPath(id string) string {
	dir := DefaultSocketDir()
	if path := filepath.Join(dir, id+".sock"); len(path) <= maxSocketPath {
		return path
	}
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".sock")
}

// DefaultSocketDir is the folder of the default socket paths:
// $XDG_RUNTIME_DIR/beatwrap, else /tmp/beatwrap-<uid>.
func DefaultSocketDir() string {
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		return filepath.Join(xdg, "beatwrap")
	}
	return filepath.Join("/tmp", "beatwrap-"+strconv.Itoa(os.Getuid()))
}

// Errors from FindSocket, matched with errors.Is.
var (
	// ErrNoSocket means no progress socket was found.
	ErrNoSocket = errors.New("no progress socket found")
	// ErrManySockets means several beatwraps serve here and nothing says
	// which one is meant.
	ErrManySockets = errors.New("several progress sockets found")
)

// FindSocket finds the progress socket of the beatwrap running here, for a
// client nobody told (a HEALTHCHECK, a Kubernetes exec probe): the default
// path of agent id when id is given, else the one socket in
// DefaultSocketDir(). When the folder holds several, the ones nobody accepts
// on (left by a crashed run) are passed over; more than one left is
// ErrManySockets.
func FindSocket(id string) (string, error) {
	if id != "" {
		return DefaultSocketPath(id), nil
	}
	dir := DefaultSocketDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("%w in %s: %w", ErrNoSocket, dir, err)
	}
	var found []string
	for _, e := range entries {
		if e.Type() == fs.ModeSocket {
			found = append(found, filepath.Join(dir, e.Name()))
		}
	}
	if len(found) > 1 {
		live := found[:0:0]
		for _, p := range found {
			if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
				c.Close()
				live = append(live, p)
			}
		}
		if len(live) > 0 {
			found = live
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w in %s", ErrNoSocket, dir)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w in %s: %s", ErrManySockets, dir, strings.Join(found, ", "))
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
	return &Client{conn: c, r: bufio.NewReaderSize(c, sockline.MaxLineSize)}, nil
}

// Send writes one report and waits for its reply. An error means the report
// may not have arrived, or its reply was lost; a report the server refused is
// a Reply with OK false and a nil error. After an error the Client is closed.
func (c *Client) Send(ctx context.Context, r sockline.Report) (sockline.Reply, error) {
	line, err := r.Marshal()
	if err != nil {
		return sockline.Reply{}, fmt.Errorf("encode report: %w", err)
	}
	reply, _, err := c.roundTrip(ctx, append(line, '\n'))
	return reply, err
}

// Query asks the beatwrap on the other end the query called name and decodes
// the fields of its reply into answer (a pointer, as for json.Unmarshal). A
// query the server refused (ok:false: an unknown name, or the query's own
// error) is an error wrapping ErrRefused, with the server's message; the
// connection stays usable then. Any other error closes the Client.
func (c *Client) Query(ctx context.Context, name string, answer any) error {
	reply, raw, err := c.roundTrip(ctx, append(sockline.MarshalQuery(name), '\n'))
	if err != nil {
		return err
	}
	if !reply.OK {
		return fmt.Errorf("%w: %s", ErrRefused, reply.Error)
	}
	if answer == nil {
		return nil
	}
	if err := json.Unmarshal(raw, answer); err != nil {
		return fmt.Errorf("read reply to query %q: %w", name, err)
	}
	return nil
}

// ErrRefused means the server answered a query with ok:false.
var ErrRefused = errors.New("query refused")

// roundTrip writes one line and reads one reply line; raw is the reply line
// itself, valid until the next round trip.
func (c *Client) roundTrip(ctx context.Context, line []byte) (sockline.Reply, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return sockline.Reply{}, nil, c.err
	}
	reply, raw, err := c.exchange(ctx, line)
	if err != nil {
		// A reply may still be on its way; the next one read would be the
		// wrong one, so this connection is done.
		c.err = fmt.Errorf("progress socket connection closed after an error: %w", err)
		c.conn.Close()
	}
	return reply, raw, err
}

func (c *Client) exchange(ctx context.Context, line []byte) (sockline.Reply, []byte, error) {
	var reply sockline.Reply
	if err := c.conn.SetDeadline(time.Time{}); err != nil {
		return reply, nil, fmt.Errorf("set deadline: %w", err)
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
		return reply, nil, fmt.Errorf("send line: %w", contextError(ctx, err))
	}
	b, err := c.r.ReadSlice('\n')
	if err != nil {
		return reply, nil, fmt.Errorf("read reply: %w", contextError(ctx, err))
	}
	if bytes.Equal(b, okReply) {
		return sockline.Reply{OK: true}, b, nil
	}
	var raw struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || raw.OK == nil {
		return reply, nil, fmt.Errorf("read reply: not a reply: %.100q", b)
	}
	return sockline.Reply{OK: *raw.OK, Error: raw.Error}, b, nil
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
func Send(ctx context.Context, path string, r sockline.Report) (sockline.Reply, error) {
	c, err := Dial(ctx, path)
	if err != nil {
		return sockline.Reply{}, err
	}
	defer c.Close()
	return c.Send(ctx, r)
}

// Query connects to the progress socket at path, asks the query called name,
// decodes the reply's fields into answer and disconnects. It is what
// `beatwrap health` does.
func Query(ctx context.Context, path, name string, answer any) error {
	c, err := Dial(ctx, path)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Query(ctx, name, answer)
}
