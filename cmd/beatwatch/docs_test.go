package main

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/beatwrap/beatwrap/internal/cli"
)

// TestReadmeFlags keeps the README's flag reference generated from the
// command itself. UPDATE_README=1 go test ./cmd/beatwatch rewrites it.
func TestReadmeFlags(t *testing.T) {
	body := cli.FlagsMarkdown(newRoot(context.Background(), io.Discard, io.Discard), envPrefix)
	ok, err := cli.SyncReadme("../../README.md", "beatwatch flags", body, os.Getenv("UPDATE_README") == "1")
	if err != nil {
		t.Fatal(err)
	}
	if !ok && os.Getenv("UPDATE_README") != "1" {
		t.Fatal("README.md's beatwatch flag reference is out of date: run UPDATE_README=1 go test ./cmd/beatwatch -run TestReadmeFlags")
	}
}
