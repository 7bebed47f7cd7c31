package wire

import "fmt"

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
			return fmt.Errorf("agent id %q has %q at %d: only A-Z a-z 0-9 . _ : - are allowed", id, id[i], i)
		}
	}
	return nil
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
