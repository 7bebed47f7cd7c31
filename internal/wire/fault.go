package wire

import "errors"

// Kinds of malformed beat, matched with errors.Is beside ErrMalformed, so
// that a consumer can count refusals by kind without reading error text.
// Their own text never shows: an error carries the cause's.
var (
	ErrTooLarge  = errors.New("beat too large")
	ErrBadID     = errors.New("bad agent id")
	ErrBadStatus = errors.New("unknown status")
)

// fault marks err with its kind; its text is err's alone.
type fault struct{ kind, err error }

func (f fault) Error() string   { return f.err.Error() }
func (f fault) Unwrap() []error { return []error{f.kind, f.err} }
