package store

import (
	"strings"
	"testing"
)

func TestTLSOptions(t *testing.T) {
	tests := []struct {
		url        string
		files      TLSFiles
		skipVerify bool
		wantErr    string
	}{
		{"rediss://127.0.0.1:6380/0", TLSFiles{}, false, ""},
		{"rediss://127.0.0.1:6380/0?skip_verify=true", TLSFiles{}, true, ""},
		{"redis://127.0.0.1:6379/0", TLSFiles{CA: "/nonexistent/ca.pem"}, false, "need a rediss:// URL"},
		{"rediss://127.0.0.1:6380/0", TLSFiles{CA: "/nonexistent/ca.pem"}, false, `--redis-ca "/nonexistent/ca.pem"`},
		{"rediss://127.0.0.1:6380/0", TLSFiles{Cert: "/x/cert.pem"}, false, "--redis-cert and --redis-key go together"},
		{"rediss://127.0.0.1:6380/0", TLSFiles{CA: "/dev/null"}, false, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := ParseRedisURL(tt.url, Options{TLS: tt.files})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.SkipVerify != tt.skipVerify || !got.TLS {
				t.Errorf("TLS %v, SkipVerify %v; want TLS, SkipVerify %v", got.TLS, got.SkipVerify, tt.skipVerify)
			}
		})
	}
}
