package cli

import (
	"errors"
	"testing"

	"github.com/beatwrap/beatwrap/internal/store"
)

// What store refuses of a --redis URL and its TLS files comes out as a usage
// error naming the flag at fault and its value; the library names none.
func TestRedisErrorNamesTheFlag(t *testing.T) {
	tests := []struct {
		url   string
		files store.TLSFiles
		want  string
	}{
		{"http://127.0.0.1:6379", store.TLSFiles{}, `--redis: redis url must start with redis:// or rediss://, got "http://127.0.0.1:6379"`},
		{"redis://u:secret@127.0.0.1:6379", store.TLSFiles{CA: "/x/ca.pem"},
			`--redis-ca "/x/ca.pem": tls files need a rediss:// URL, got redis://127.0.0.1:6379`},
		{"rediss://127.0.0.1:6380", store.TLSFiles{CA: "/nonexistent/ca.pem"},
			`--redis-ca "/nonexistent/ca.pem": open /nonexistent/ca.pem: no such file or directory`},
		{"rediss://127.0.0.1:6380", store.TLSFiles{CA: "/dev/null"}, `--redis-ca "/dev/null": no PEM certificate in it`},
		{"rediss://127.0.0.1:6380", store.TLSFiles{Cert: "/x/cert.pem"}, `--redis-cert and --redis-key go together, got only --redis-cert "/x/cert.pem"`},
		{"rediss://127.0.0.1:6380", store.TLSFiles{Key: "/x/key.pem"}, `--redis-cert and --redis-key go together, got only --redis-key "/x/key.pem"`},
		{"rediss://127.0.0.1:6380", store.TLSFiles{Cert: "/x/cert.pem", Key: "/x/key.pem"},
			`--redis-cert "/x/cert.pem", --redis-key "/x/key.pem": open /x/cert.pem: no such file or directory`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := store.ParseRedisURL(tt.url, store.Options{TLS: tt.files})
			if err == nil {
				t.Fatal("store took it")
			}
			got := RedisError(err)
			var usage *UsageError
			if !errors.As(got, &usage) {
				t.Errorf("%v is no UsageError (exit 2)", got)
			}
			if got.Error() != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
