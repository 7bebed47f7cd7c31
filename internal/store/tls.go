package store

import (
	"crypto/tls"
	"crypto/x509"
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

// apply loads the files into cfg, the TLS configuration go-redis made from
// a rediss:// URL.
func (f TLSFiles) apply(cfg *tls.Config) error {
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return fmt.Errorf("--redis-ca %q: %w", f.CA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--redis-ca %q: no PEM certificate in it", f.CA)
		}
		cfg.RootCAs = pool
	}
	if (f.Cert == "") != (f.Key == "") {
		return fmt.Errorf("--redis-cert and --redis-key go together, got only %s", map[bool]string{true: "--redis-cert", false: "--redis-key"}[f.Cert != ""])
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return fmt.Errorf("--redis-cert %q, --redis-key %q: %w", f.Cert, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return nil
}
