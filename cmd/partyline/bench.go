package main

import (
	"context"
	"io"

	partybench "github.com/partyline/partyline/bench"
)

// bench runs the load generator; see the bench package.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return partybench.Main(ctx, args, stdout, stderr)
}
