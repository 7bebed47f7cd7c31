package store

import (
	"strings"
	"testing"
)

// TestNewHTTPNeedsScheme: a watcher address without http:// is refused with
// the URL it should have been.
func TestNewHTTPNeedsScheme(t *testing.T) {
	for _, in := range []string{"127.0.0.1:7070", "localhost:7070"} {
		_, err := NewHTTP(in, "", 0)
		if err == nil || !strings.Contains(err.Error(), "needs its scheme: http://"+in) {
			t.Errorf("NewHTTP(%q) = %v, want it to say http://%s", in, err, in)
		}
	}
	if _, err := NewHTTP("http://127.0.0.1:7070", "", 0); err != nil {
		t.Errorf("NewHTTP(http://127.0.0.1:7070) = %v", err)
	}
}
