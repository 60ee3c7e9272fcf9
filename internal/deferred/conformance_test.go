package deferred_test

import (
	"context"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/brokertest"
	"github.com/partyline/partyline/internal/deferred"
	"github.com/partyline/partyline/internal/eventlogtest"
	"github.com/partyline/partyline/internal/presencetest"
	"github.com/partyline/partyline/internal/storetest"
)

// The conformance suites run on stand-ins set at once to memory backends,
// dressed up with the optional interfaces the stand-ins need. They show
// that a stand-in, once set, behaves as the backend it stands in for.

// memoryStore is a MemoryStore that can be pinged.
type memoryStore struct{ *partyline.MemoryStore }

// Ping implements partyline.Pinger.
func (memoryStore) Ping(context.Context) error { return nil }

// memoryBroker is a MemoryBroker that can be pinged.
type memoryBroker struct{ *partyline.MemoryBroker }

// Ping implements partyline.Pinger.
func (memoryBroker) Ping(context.Context) error { return nil }

// memoryPresence is a MemoryPresence that can be pinged and takes the
// expiry and restore callbacks, which it keeps to show they were passed on.
type memoryPresence struct {
	*partyline.MemoryPresence
	expired, restored func(room, user string)
}

// Ping implements partyline.Pinger.
func (*memoryPresence) Ping(context.Context) error { return nil }

// StartExpiry implements partyline.PresenceExpirer.
func (p *memoryPresence) StartExpiry(expired func(room, user string)) { p.expired = expired }

// StartRestore implements partyline.PresenceRestorer.
func (p *memoryPresence) StartRestore(restored func(room, user string)) { p.restored = restored }

func TestStoreConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		NewStorage: func(t *testing.T) storetest.Opener {
			return func(t *testing.T, keep int) partyline.Store {
				s := deferred.NewStore()
				s.Set(memoryStore{partyline.NewMemoryStore(keep)})
				return s
			}
		},
	})
}

// TestBrokerConformance sets each stand-in before the suite starts it, so
// Start starts the real broker.
// TestEventLogConformance: a stand-in set at once to a memory store keeps
// webhook events and idempotency keys as the store does; the suite sets its
// routes after Set.
func TestEventLogConformance(t *testing.T) {
	eventlogtest.Run(t, eventlogtest.Backend{
		NewStorage: func(t *testing.T) eventlogtest.Opener {
			return func(t *testing.T) eventlogtest.Store {
				s := deferred.NewStore()
				s.Set(memoryStore{partyline.NewMemoryStore(0)})
				return s
			}
		},
	})
}

func TestBrokerConformance(t *testing.T) {
	brokertest.Run(t, brokertest.Backend{
		NewTransport: func(t *testing.T) brokertest.NewNode {
			return func(t *testing.T) partyline.Broker {
				b := deferred.NewBroker()
				if err := b.Set(memoryBroker{partyline.NewMemoryBroker()}); err != nil {
					t.Fatalf("Set: %v", err)
				}
				return b
			}
		},
	})
}

func TestPresenceConformance(t *testing.T) {
	presencetest.Run(t, presencetest.Backend{
		NewStorage: func(t *testing.T) presencetest.NewNode {
			return func(t *testing.T) partyline.Presence {
				p := deferred.NewPresence()
				p.Set(&memoryPresence{MemoryPresence: partyline.NewMemoryPresence()})
				return p
			}
		},
	})
}
