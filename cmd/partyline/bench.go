package main

import (
	"context"
	"errors"
	"io"
)

// bench runs the load generator; see the bench package.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("bench: not built yet")
}
