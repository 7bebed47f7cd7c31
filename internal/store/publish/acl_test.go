package publish

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/store"
	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// aclUser makes a Redis ACL user with the given rules for the test's
// namespace and returns the URL that logs in as it.
func aclUser(t *testing.T, admin, ns string, rules ...string) string {
	t.Helper()
	name := "u-" + ns
	args := append([]string{"ACL", "SETUSER", name, "reset", "on", ">pw-" + ns,
		"~" + ns + ":agent:*", "&" + ns + ":heartbeats", "&" + ns + ":heartbeats:*"}, rules...)
	testutil.RedisURLCLI(t, admin, args...)
	t.Cleanup(func() { testutil.RedisURLCLI(t, admin, "ACL", "DELUSER", name) })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(name, "pw-"+ns)
	return u.String()
}

// TestFinalBeatUnderACLSaysWhatRan: under an ACL user that may not run
// MULTI, Redis runs the final beat's PUBLISH and HSET one by one; the error
// says so, naming what ran, what was refused and the missing permission,
// instead of "not delivered". With MULTI allowed but a command refused,
// Redis discards the transaction: nothing is written, and the error names
// the command and the permission.
func TestFinalBeatUnderACLSaysWhatRan(t *testing.T) {
	admin := testutil.RedisURL(t)
	raw := rawClient(t, admin)
	ctx := context.Background()
	all := []string{"+multi", "+exec", "+publish", "+hset", "+hsetnx", "+hdel", "+pexpire"}
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(r string) bool { return slices.Contains(drop, r) })
	}
	for _, tc := range []struct {
		name       string
		rules      []string
		wantRan    []string // nil: nothing may run
		wantInErr  []string
		wantAtomic bool // everything ran
	}{
		{name: "minimum", rules: all, wantAtomic: true},
		{name: "no multi", rules: without("+multi", "+exec"),
			wantRan:   []string{"publish", "hset", "hsetnx", "hdel", "pexpire"},
			wantInErr: []string{"outside a transaction", "+multi", "publish, hset"}},
		{name: "no multi, no hset", rules: without("+multi", "+exec", "+hset"),
			wantRan:   []string{"publish", "hsetnx", "hdel", "pexpire"},
			wantInErr: []string{"+multi", "hset: NOPERM", "+hset"}},
		{name: "no exec", rules: without("+exec"), wantInErr: []string{"nothing written", "+exec"}},
		{name: "no hset", rules: without("+hset"), wantInErr: []string{"nothing written", "hset: NOPERM", "+hset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := testutil.Namespace(t)
			u := aclUser(t, admin, ns, tc.rules...)
			sub := raw.Subscribe(ctx, ns+":heartbeats")
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			pub, err := newRedis(u, store.Options{Namespace: ns}, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			code := 3
			b := testBeat("acl-1", 7, wire.StatusExited)
			b.ExitCode = &code
			err = pub.Final(ctx, b, time.Now())

			published := false
			select {
			case <-sub.Channel():
				published = true
			case <-time.After(500 * time.Millisecond):
			}
			h := raw.HGetAll(ctx, ns+":agent:acl-1").Val()
			ttl := raw.PTTL(ctx, ns+":agent:acl-1").Val()
			wrote := fmt.Sprintf("published %v, hash %v, ttl %v", published, h, ttl)

			if tc.wantAtomic {
				if err != nil || !published || h["stoppedAt"] == "" || ttl <= 0 {
					t.Fatalf("under the minimum ACL: error %v, %s", err, wrote)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, though the ACL refuses part of the beat (%s)", wrote)
			}
			if !errors.Is(err, ErrRejected) {
				t.Errorf("error %v is not ErrRejected (the same write would be refused again)", err)
			}
			for _, s := range tc.wantInErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			var pe *PartialError
			if tc.wantRan == nil {
				if errors.As(err, &pe) || published || len(h) > 0 {
					t.Fatalf("error %v, and %s: want nothing written", err, wrote)
				}
				return
			}
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is no PartialError, though Redis ran part of the beat (%s)", err, wrote)
			}
			if !slices.Equal(pe.Ran, tc.wantRan) {
				t.Errorf("PartialError.Ran = %v, want %v", pe.Ran, tc.wantRan)
			}
			// What the error says ran did run.
			if slices.Contains(pe.Ran, "publish") != published {
				t.Errorf("Ran %v, but published = %v", pe.Ran, published)
			}
			if slices.Contains(pe.Ran, "hset") != (h["stoppedAt"] != "") {
				t.Errorf("Ran %v, but the hash is %v", pe.Ran, h)
			}
		})
	}
}
