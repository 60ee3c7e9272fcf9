package eventlogtest_test

import (
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/eventlogtest"
)

func TestMemoryStore(t *testing.T) {
	eventlogtest.Run(t, eventlogtest.Backend{
		NewStorage: func(t *testing.T) eventlogtest.Opener {
			return func(t *testing.T) eventlogtest.Store { return partyline.NewMemoryStore(0) }
		},
	})
}
