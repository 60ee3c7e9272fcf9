package brokertest_test

import (
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/brokertest"
)

// TestMemoryBroker runs the suite on the single-node broker: every
// MemoryBroker is a transport of its own, so the multi-node cases are
// skipped (Cluster false).
func TestMemoryBroker(t *testing.T) {
	brokertest.Run(t, brokertest.Backend{
		NewTransport: func(t *testing.T) brokertest.NewNode {
			return func(t *testing.T) partyline.Broker { return partyline.NewMemoryBroker() }
		},
	})
}
