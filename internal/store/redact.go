package store

import (
	"net/url"
	"strings"
)

// masked is what a password is shown as: url.URL.Redacted's mark.
const masked = "xxxxx"

// redact hides the password in a URL (a --redis or --watcher URL) before it
// is shown, also in a URL that does not parse: that one is shown in the
// error that says so.
func redact(raw string) string {
	pw := password(raw)
	if pw == "" {
		return raw
	}
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return strings.Replace(raw, ":"+pw+"@", ":"+masked+"@", 1)
}

// password is the password in raw as it is written there (still
// percent-encoded), "" when raw has none. It reads the user info by hand, so
// it finds the password of a URL that url.Parse refuses.
func password(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}

// redactedError is an error whose text had a password in it, masked; the
// error it wraps is still there for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr masks the password of raw (a URL) wherever err's text shows it:
// url.Parse and the HTTP client quote the URL they were given.
func redactErr(err error, raw string) error {
	pw := password(raw)
	if err == nil || pw == "" {
		return err
	}
	msg := err.Error()
	shown := msg
	for _, p := range []string{pw, decoded(pw)} {
		shown = strings.ReplaceAll(shown, ":"+p+"@", ":"+masked+"@")
	}
	if shown == msg {
		return err
	}
	return &redactedError{msg: shown, err: err}
}

// decoded is pw with its percent-encoding undone, or pw when it has none
// that decodes.
func decoded(pw string) string {
	if d, err := url.PathUnescape(pw); err == nil {
		return d
	}
	return pw
}
