package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/beatwrap/beatwrap/internal/version"
)

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String("beatwatch"))
		},
	}
}
