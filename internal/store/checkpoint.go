package store

import (
	"encoding/json"
	"time"
)

// Checkpoint is an agent's checkpoint as it is stored.
type Checkpoint struct {
	// Value is the JSON value the agent wrote; nil when there is none.
	Value json.RawMessage
	// At is when beatwrap received it; zero when there is none.
	At time.Time
}

// None reports whether there is no checkpoint: never written, or cleared.
func (c Checkpoint) None() bool { return len(c.Value) == 0 || string(c.Value) == "null" }

// CheckpointRecord is what a checkpoint key holds (Keys.Checkpoint), and
// what a single-node beatwatch answers for one: one JSON object, always
// written in this order so that scripts can read the epoch without decoding
// the rest:
//
//	{"epoch":3,"at":1764000000000,"checkpoint":{"n":41}}
//
// Epoch is the newest epoch taken for the id, At when the checkpoint was
// received (ms since the epoch) and Value the agent's value (null when
// there is none). Clearing keeps the key, and with it the epoch.
type CheckpointRecord struct {
	Epoch int64           `json:"epoch"`
	At    int64           `json:"at"`
	Value json.RawMessage `json:"checkpoint"`
}

// Checkpoint is the record's checkpoint: zero when there is none.
func (rec CheckpointRecord) Checkpoint() Checkpoint {
	cp := Checkpoint{Value: rec.Value}
	if cp.None() {
		return Checkpoint{}
	}
	cp.At = time.UnixMilli(rec.At)
	return cp
}
