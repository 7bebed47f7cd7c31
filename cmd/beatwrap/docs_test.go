package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

func TestCommandDocs(t *testing.T) {
	testutil.CheckCommandDocs(t, "beatwrap", envPrefix, func(out *strings.Builder) *cobra.Command {
		return newRoot(context.Background(), out, io.Discard)
	})
}
