package cli

import (
	"errors"

	"github.com/beatwrap/beatwrap/internal/store"
)

// tlsFlags are the flags that give each of store.TLSFiles.
var tlsFlags = map[store.TLSFile]string{
	store.TLSCA:   "--redis-ca",
	store.TLSCert: "--redis-cert",
	store.TLSKey:  "--redis-key",
}

// RedisError is the usage error for what store.Open or
// store.ParseRedisURL refused: a TLS file that cannot be used names its
// flag and path (--redis-ca, --redis-cert, --redis-key); anything else is
// the --redis URL's.
func RedisError(err error) error {
	var te *store.TLSError
	if !errors.As(err, &te) {
		return Usagef("--redis: %v", err)
	}
	flag := tlsFlags[te.File]
	switch {
	case errors.Is(err, store.ErrHalfPair):
		return Usagef("--redis-cert and --redis-key go together, got only %s %q", flag, te.Path)
	case te.KeyPath != "":
		return Usagef("--redis-cert %q, --redis-key %q: %v", te.Path, te.KeyPath, te.Err)
	}
	return Usagef("%s %q: %v", flag, te.Path, te.Err)
}
