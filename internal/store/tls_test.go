package store

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestTLSOptions(t *testing.T) {
	tests := []struct {
		url        string
		files      TLSFiles
		skipVerify bool
		wantErr    error   // nil: no error
		wantFile   TLSFile // of the *TLSError
		wantPath   string
		wantKey    string
		wantInErr  string
	}{
		{url: "rediss://127.0.0.1:6380/0"},
		{url: "rediss://127.0.0.1:6380/0?skip_verify=true", skipVerify: true},
		{url: "redis://127.0.0.1:6379/0", files: TLSFiles{CA: "/nonexistent/ca.pem"},
			wantErr: ErrNotRediss, wantFile: TLSCA, wantPath: "/nonexistent/ca.pem", wantInErr: "need a rediss:// URL, got redis://127.0.0.1:6379"},
		{url: "redis://127.0.0.1:6379/0", files: TLSFiles{Key: "/x/key.pem"},
			wantErr: ErrNotRediss, wantFile: TLSKey, wantPath: "/x/key.pem"},
		{url: "rediss://127.0.0.1:6380/0", files: TLSFiles{CA: "/nonexistent/ca.pem"},
			wantErr: fs.ErrNotExist, wantFile: TLSCA, wantPath: "/nonexistent/ca.pem", wantInErr: `tls ca "/nonexistent/ca.pem"`},
		{url: "rediss://127.0.0.1:6380/0", files: TLSFiles{Cert: "/x/cert.pem"},
			wantErr: ErrHalfPair, wantFile: TLSCert, wantPath: "/x/cert.pem"},
		{url: "rediss://127.0.0.1:6380/0", files: TLSFiles{Key: "/x/key.pem"},
			wantErr: ErrHalfPair, wantFile: TLSKey, wantPath: "/x/key.pem"},
		{url: "rediss://127.0.0.1:6380/0", files: TLSFiles{CA: "/dev/null"},
			wantErr: ErrNoPEM, wantFile: TLSCA, wantPath: "/dev/null", wantInErr: "no PEM certificate"},
		{url: "rediss://127.0.0.1:6380/0", files: TLSFiles{Cert: "/x/cert.pem", Key: "/x/key.pem"},
			wantErr: fs.ErrNotExist, wantFile: TLSCert, wantPath: "/x/cert.pem", wantKey: "/x/key.pem", wantInErr: `with key "/x/key.pem"`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := ParseRedisURL(tt.url, Options{TLS: tt.files})
			if tt.wantErr != nil {
				var te *TLSError
				if !errors.As(err, &te) || !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want a *TLSError wrapping %v", err, tt.wantErr)
				}
				if te.File != tt.wantFile || te.Path != tt.wantPath || te.KeyPath != tt.wantKey {
					t.Errorf("TLSError = %v %q key %q, want %v %q key %q", te.File, te.Path, te.KeyPath, tt.wantFile, tt.wantPath, tt.wantKey)
				}
				if !strings.Contains(err.Error(), tt.wantInErr) {
					t.Errorf("err = %v, want one saying %q", err, tt.wantInErr)
				}
				// The command line names its flags; the library does not.
				if strings.Contains(err.Error(), "--") {
					t.Errorf("err = %v names a flag", err)
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
