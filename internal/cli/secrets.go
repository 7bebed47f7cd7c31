package cli

import (
	"bytes"
	"os"

	"github.com/spf13/pflag"
)

// Secrets are the flags both binaries take to read secrets from files
// rather than from the command line (which ps shows to every user) or the
// environment (which /proc/<pid>/environ shows to every process of the user).
type Secrets struct {
	TokenFile, RedisPasswordFile string
	// RedisCA, RedisCert and RedisKey are the TLS files for rediss://.
	RedisCA, RedisCert, RedisKey string
}

// AddFlags registers --token-file, --redis-password-file, --redis-ca,
// --redis-cert and --redis-key.
func (s *Secrets) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.TokenFile, "token-file", "", "read the bearer token from this file (trailing newline dropped) instead of --token")
	fs.StringVar(&s.RedisPasswordFile, "redis-password-file", "", "read the Redis password from this file, instead of putting it in the --redis URL")
	fs.StringVar(&s.RedisCA, "redis-ca", "", "PEM file of the CA that signed the Redis server's certificate, for rediss:// (default: the system's)")
	fs.StringVar(&s.RedisCert, "redis-cert", "", "PEM client certificate for rediss://, for a Redis with tls-auth-clients (with --redis-key)")
	fs.StringVar(&s.RedisKey, "redis-key", "", "PEM key of --redis-cert")
}

// Token returns the token: token itself, or the content of --token-file.
// Both at once is a usage error.
func (s *Secrets) Token(token string) (string, error) {
	if s.TokenFile == "" {
		return token, nil
	}
	if token != "" {
		return "", Usagef("--token and --token-file are exclusive, got both")
	}
	return ReadSecret("--token-file", s.TokenFile)
}

// RedisPassword returns the content of --redis-password-file, or "" when it
// is not given.
func (s *Secrets) RedisPassword() (string, error) {
	if s.RedisPasswordFile == "" {
		return "", nil
	}
	return ReadSecret("--redis-password-file", s.RedisPasswordFile)
}

// ReadSecret reads the secret in the file at path, which the flag named
// gave: its content without trailing newlines (the one an editor or
// `echo` leaves). A missing, unreadable or empty file is a usage error
// naming the flag and the path, never the content.
func ReadSecret(flag, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", Usagef("%s %q: %v", flag, path, err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return "", Usagef("%s %q is empty", flag, path)
	}
	return string(b), nil
}
