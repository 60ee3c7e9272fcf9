package storetest_test

import (
	"fmt"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		NewStorage: func(t *testing.T) storetest.Opener {
			return func(t *testing.T, keep int) partyline.Store { return partyline.NewMemoryStore(keep) }
		},
	})
}

func BenchmarkMemoryStoreAppend(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			storetest.BenchmarkAppend(b, partyline.NewMemoryStore(1000), writers)
		})
	}
}
