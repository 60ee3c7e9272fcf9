package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/storetest"
	"github.com/partyline/partyline/sqlite"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		NewStorage: func(t *testing.T) storetest.Opener {
			path := filepath.Join(t.TempDir(), "partyline.db")
			return func(t *testing.T, keep int) partyline.Store { return open(t, path, keep) }
		},
		Durable: true,
	})
}

// open opens path keeping keep messages per room, failing t on error.
func open(t *testing.T, path string, keep int) *sqlite.Store {
	t.Helper()
	store, err := sqlite.Open(t.Context(), path, sqlite.Options{Keep: keep})
	if err != nil {
		t.Fatalf("Open(%q, %d): %v", path, keep, err)
	}
	return store
}

func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Keep: 1000})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			storetest.BenchmarkAppend(b, store, writers)
		})
	}
}
