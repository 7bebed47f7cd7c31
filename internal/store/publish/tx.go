package publish

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// PartialError is a write of which Redis ran some commands and refused
// others. It happens when Redis will not open the transaction (MULTI
// refused, as under an ACL user without +multi): the commands sent after it
// then run, or are refused, one by one. Retrying does not help; the log
// says what reached Redis and what permission is missing.
type PartialError struct {
	What    string   // the write: "beat of a1", "registration of a1"
	Ran     []string // the commands Redis ran, in order ("publish", "hset")
	Refused []string // the commands it refused, each with why
	// NoTx is why there was no transaction (MULTI's own error), or nil when
	// the write was two halves that each was whole (SPUBLISH beside the
	// hash's transaction on a Cluster).
	NoTx error
}

func (e *PartialError) Error() string {
	how := "in part"
	if e.NoTx != nil {
		how = "in part, outside a transaction (multi refused: " + e.NoTx.Error() + permHint(e.NoTx, "") + ")"
	}
	refused := "nothing"
	if len(e.Refused) > 0 {
		refused = strings.Join(e.Refused, "; ")
	}
	return fmt.Sprintf("%s written %s: redis ran %s and refused %s", e.What, how, strings.Join(e.Ran, ", "), refused)
}

// Unwrap makes a partial write an ErrRejected: Redis answered, and the same
// write would be refused again.
func (e *PartialError) Unwrap() error { return ErrRejected }

// txCmd is one command of a transaction, and the key it acts on (for the
// error, when the ACL refuses the key).
type txCmd []any

func (c txCmd) name() string { return strings.ToLower(fmt.Sprint(c[0])) }

// tx runs cmds on c as one MULTI/EXEC, in one round trip, and returns their
// results. Each reply is read, so the outcome is known command by command:
//   - all ran: the results, nil;
//   - nothing ran (a command or EXEC refused, so Redis discarded the
//     transaction; or the connection failed): an error that names the
//     refused command and the missing permission, an ErrRejected when Redis
//     refused it;
//   - some ran, outside a transaction, because MULTI itself was refused: a
//     *PartialError saying which ran and which were refused.
//
// go-redis's TxPipelined is not used: when MULTI is refused it reports the
// refusal for every command, though Redis ran them.
func tx(ctx context.Context, c redis.Cmdable, what string, cmds ...txCmd) ([]any, error) {
	p := c.Pipeline()
	multi := p.Do(ctx, "multi")
	replies := make([]*redis.Cmd, len(cmds))
	for i, cmd := range cmds {
		replies[i] = p.Do(ctx, cmd...)
	}
	exec := p.Do(ctx, "exec")
	_, err := p.Exec(ctx)
	if err != nil && !isRedisError(err) {
		return nil, err // the connection failed: Redis may have run nothing or all
	}
	if merr := multi.Err(); merr != nil {
		var ran, refused []string
		for i, r := range replies {
			if r.Err() != nil {
				refused = append(refused, refusal(cmds[i], r.Err()))
				continue
			}
			ran = append(ran, cmds[i].name())
		}
		if len(ran) == 0 {
			return nil, fmt.Errorf("%w: %s refused: multi: %w%s", ErrRejected, what, merr, permHint(merr, ""))
		}
		return nil, &PartialError{What: what, Ran: ran, Refused: refused, NoTx: merr}
	}
	if eerr := exec.Err(); eerr != nil {
		// Nothing ran. Name the command Redis refused, else EXEC's reason.
		for i, r := range replies {
			if r.Err() != nil {
				return nil, fmt.Errorf("%w: %s refused, nothing written: %s", ErrRejected, what, refusal(cmds[i], r.Err()))
			}
		}
		if isRedisError(eerr) {
			return nil, fmt.Errorf("%w: %s refused, nothing written: exec: %w%s", ErrRejected, what, eerr, permHint(eerr, ""))
		}
		return nil, eerr
	}
	res, ok := exec.Val().([]any)
	if !ok || len(res) != len(cmds) {
		return nil, fmt.Errorf("%s: unexpected exec reply %v", what, exec.Val())
	}
	// A command may fail inside a transaction that ran (WRONGTYPE): the
	// others ran all the same.
	var ran, refused []string
	for i, v := range res {
		if e, ok := v.(error); ok {
			refused = append(refused, refusal(cmds[i], e))
			continue
		}
		ran = append(ran, cmds[i].name())
	}
	switch {
	case len(ran) == 0:
		return res, fmt.Errorf("%w: %s refused, nothing written: %s", ErrRejected, what, strings.Join(refused, "; "))
	case len(refused) > 0:
		return res, &PartialError{What: what, Ran: ran, Refused: refused}
	}
	return res, nil
}

// refusal says which command Redis refused and why, with the permission
// that is missing when it was the ACL.
func refusal(cmd txCmd, err error) string {
	key := ""
	if len(cmd) > 1 {
		key = fmt.Sprint(cmd[1])
	}
	return cmd.name() + ": " + err.Error() + permHint(err, key)
}

var noPermCommand = regexp.MustCompile(`permissions to run the '([a-z|]+)' command`)

// permHint names the ACL permission a NOPERM error says is missing: the
// command (+hset), or the key or channel pattern that does not cover name.
func permHint(err error, name string) string {
	msg := err.Error()
	if !strings.Contains(msg, "NOPERM") {
		return ""
	}
	if m := noPermCommand.FindStringSubmatch(msg); m != nil {
		return " (the redis user needs +" + m[1] + ")"
	}
	switch {
	case name != "" && strings.Contains(msg, "channel"):
		return " (the redis user needs the channel &" + name + ")"
	case name != "" && strings.Contains(msg, "key"):
		return " (the redis user needs the key ~" + name + ")"
	}
	return ""
}

// isRedisError says whether err is a reply from Redis (an error it
// answered), not a failure to reach it.
func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.Nil)
}
