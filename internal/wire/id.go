package wire

import (
	"fmt"
	"unicode/utf8"
)

// MaxIDLength is the longest agent id accepted.
const MaxIDLength = 128

// ValidateID checks an agent id: 1 to 128 of A-Z a-z 0-9 . _ : -
// The id becomes part of Redis keys, socket paths and Docker labels, so
// nothing else is allowed.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("agent id is empty")
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("agent id is %d characters, more than %d", len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return fmt.Errorf("agent id %q has %s at byte %d: only A-Z a-z 0-9 . _ : - are allowed", id, charAt(id, i), i)
		}
	}
	return nil
}

// charAt names the character that starts at s[i] as a user typed it: 'é',
// not the first byte of its UTF-8 ('Ã'); a byte that is not UTF-8 by its
// value.
func charAt(s string, i int) string {
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n == 1 {
		return fmt.Sprintf("byte %#02x", s[i])
	}
	return fmt.Sprintf("%q", r)
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

// SanitizeID maps any string onto the id alphabet, replacing what is not
// allowed with '-' and cutting it to MaxIDLength. It is used to derive ids
// from host names and commands.
func SanitizeID(s string) string {
	b := []byte(s)
	if len(b) > MaxIDLength {
		b = b[:MaxIDLength]
	}
	for i, c := range b {
		if !idByte(c) {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "agent"
	}
	return string(b)
}
