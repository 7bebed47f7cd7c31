package store

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles are the files a rediss:// connection is made with: the CA that
// signed the server's certificate (instead of the system's), and a client
// certificate and its key for servers that ask for one (tls-auth-clients).
type TLSFiles struct {
	CA, Cert, Key string
}

func (f TLSFiles) any() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// TLSFile says which of TLSFiles a TLSError is about.
type TLSFile int

// The files of TLSFiles.
const (
	TLSCA TLSFile = iota + 1
	TLSCert
	TLSKey
)

func (f TLSFile) String() string {
	switch f {
	case TLSCA:
		return "tls ca"
	case TLSCert:
		return "tls client certificate"
	case TLSKey:
		return "tls client key"
	}
	return "tls file"
}

// Why a TLSError's file cannot be used, besides the error of reading or
// loading it.
var (
	// ErrNotRediss: TLS files were given for a URL without TLS.
	ErrNotRediss = errors.New("tls files need a rediss:// URL")
	// ErrNoPEM: the CA file holds no PEM certificate.
	ErrNoPEM = errors.New("no PEM certificate in it")
	// ErrHalfPair: a client certificate without its key, or a key
	// without its certificate.
	ErrHalfPair = errors.New("a client certificate and its key go together")
)

// TLSError is a TLS file that cannot be used: which of TLSFiles (File),
// its path, and why (Err: ErrNotRediss, ErrNoPEM, ErrHalfPair, or the
// error of reading or loading it).
type TLSError struct {
	File TLSFile
	Path string
	// KeyPath is the key a client certificate was loaded with: a pair that
	// does not load is File TLSCert, and either file may be at fault.
	KeyPath string
	Err     error
}

func (e *TLSError) Error() string {
	if e.KeyPath != "" {
		return fmt.Sprintf("%v %q with key %q: %v", e.File, e.Path, e.KeyPath, e.Err)
	}
	return fmt.Sprintf("%v %q: %v", e.File, e.Path, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// given returns the first file that is set, for an error about them all.
func (f TLSFiles) given() (TLSFile, string) {
	switch {
	case f.CA != "":
		return TLSCA, f.CA
	case f.Cert != "":
		return TLSCert, f.Cert
	}
	return TLSKey, f.Key
}

// apply loads the files into cfg, the TLS configuration go-redis made from
// a rediss:// URL.
func (f TLSFiles) apply(cfg *tls.Config) error {
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return &TLSError{File: TLSCA, Path: f.CA, Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return &TLSError{File: TLSCA, Path: f.CA, Err: ErrNoPEM}
		}
		cfg.RootCAs = pool
	}
	switch {
	case f.Cert != "" && f.Key == "":
		return &TLSError{File: TLSCert, Path: f.Cert, Err: ErrHalfPair}
	case f.Cert == "" && f.Key != "":
		return &TLSError{File: TLSKey, Path: f.Key, Err: ErrHalfPair}
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return &TLSError{File: TLSCert, Path: f.Cert, KeyPath: f.Key, Err: err}
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return nil
}
