package store

import (
	"strings"
	"testing"
)

// TestURLErrorsHidePasswords: the errors for a --redis or --watcher URL
// that is refused name the URL, its password masked, also when the URL does
// not parse at all (url.Parse quotes what it was given).
func TestURLErrorsHidePasswords(t *testing.T) {
	const pw = "pw-7e1a"
	tests := []struct {
		name  string
		parse func() error
	}{
		{"watcher with a bad port", func() error { _, err := NewHTTP("http://u:"+pw+"@h:port", "", 0); return err }},
		{"watcher with a space in its user info", func() error { _, err := NewHTTP("http://u:"+pw+" x@h:1", "", 0); return err }},
		{"watcher of another scheme", func() error { _, err := NewHTTP("ftp://u:"+pw+"@h:1", "", 0); return err }},
		{"redis with a bad port", func() error { _, err := ParseRedisURL("redis://u:"+pw+"@h:port/0", Options{}); return err }},
		{"redis of another scheme", func() error { _, err := ParseRedisURL("http://u:"+pw+"@h:1", Options{}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse()
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), "u:"+masked+"@") {
				t.Errorf("error does not name the URL with its password masked: %v", err)
			}
		})
	}
}

// TestWatcherNamedWithoutPassword: a watcher's URL is shown masked, and
// used as given.
func TestWatcherNamedWithoutPassword(t *testing.T) {
	h, err := NewHTTP("http://u:p%40ss@127.0.0.1:7070/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.String(), "http://u:xxxxx@127.0.0.1:7070"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := h.Shown("/v1/beats"), "http://u:xxxxx@127.0.0.1:7070/v1/beats"; got != want {
		t.Errorf("Shown = %q, want %q", got, want)
	}
	if got, want := h.URL("/v1/beats"), "http://u:p%40ss@127.0.0.1:7070/v1/beats"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
}
