// Package cli holds what both binaries' command lines share: reading every
// flag from an environment variable, the one mapping from errors to exit
// codes, and the logger that --log-format and --log-level choose.
package cli
