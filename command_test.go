package partyline_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// commandWait is the bound of a cluster command's wait for replies
// (command.go).
const commandWait = 2 * time.Second

// disconnect calls Disconnect(user) and returns its count and duration,
// failing t on error.
func disconnect(t *testing.T, srv *partyline.Server, user string) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	n, err := srv.Disconnect(t.Context(), user)
	if err != nil {
		t.Fatalf("Disconnect(%s): %v", user, err)
	}
	return n, time.Since(start)
}

// connectBob connects bob twice and alice once, and returns them.
func connectBob(t *testing.T, ts *testServer) (bobs []*wstest.Client, alice *wstest.Client) {
	t.Helper()
	bobs = []*wstest.Client{ts.dial(t, "/ws?username=bob"), ts.dial(t, "/ws?username=bob&room=lobby")}
	return bobs, ts.dial(t, "/ws?username=alice&room=lobby")
}

// checkKicked fails t unless each of bobs was closed with 4003 and alice
// still answers.
func checkKicked(t *testing.T, bobs []*wstest.Client, alice *wstest.Client) {
	t.Helper()
	for i, bob := range bobs {
		if code := bob.CloseCode(); code != partyline.CloseKicked {
			t.Errorf("bob's connection %d closed with %d, want %d", i, code, partyline.CloseKicked)
		}
	}
	alice.Send(map[string]any{"type": "ping", "id": "p"})
	if f := alice.WaitFor("ack"); f.Str("id") != "p" {
		t.Errorf("alice got %v, want the ack of her ping", f)
	}
}

// TestDisconnectCountsOnOneNode: on one node Disconnect answers how many
// connections it closed as soon as the node has replied to itself, and 0
// at once for a user with none.
func TestDisconnectCountsOnOneNode(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	bobs, alice := connectBob(t, ts)
	if n, took := disconnect(t, ts.Server, "bob"); n != 2 || took >= commandWait/2 {
		t.Fatalf("Disconnect(bob with 2 connections) = %d after %s, want 2 well within %s", n, took, commandWait)
	}
	checkKicked(t, bobs, alice)
	waitUntil(t, "bob's connections to end", func() bool { return ts.Stats().Connections == 1 })
	for _, user := range []string{"bob", "nobody"} {
		if n, took := disconnect(t, ts.Server, user); n != 0 || took >= commandWait/2 {
			t.Fatalf("Disconnect(%s, offline) = %d after %s, want 0 well within %s", user, n, took, commandWait)
		}
	}
}

// uncountedBroker is a memory broker that cannot tell how many nodes an
// event reached: it hides PublishCount.
type uncountedBroker struct{ partyline.Broker }

// inflatedBroker is a memory broker that counts one node more than it
// reached, as Redis does when a client other than a node listens.
type inflatedBroker struct{ *partyline.MemoryBroker }

// PublishCount implements partyline.PublishCounter.
func (b inflatedBroker) PublishCount(ctx context.Context, topic string, payload []byte) (int, error) {
	n, err := b.MemoryBroker.PublishCount(ctx, topic, payload)
	return n + 1, err
}

// TestDisconnectWaitsAtMostTheBound: when the broker cannot count the
// nodes, or counts one that never replies, Disconnect waits for replies
// for the bound and answers with the count of those that came.
func TestDisconnectWaitsAtMostTheBound(t *testing.T) {
	for name, broker := range map[string]partyline.Broker{
		"uncounted": uncountedBroker{partyline.NewMemoryBroker()},
		"inflated":  inflatedBroker{partyline.NewMemoryBroker()},
	} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, partyline.Options{Broker: broker})
			bobs, alice := connectBob(t, ts)
			n, took := disconnect(t, ts.Server, "bob")
			if n != 2 || took < commandWait-100*time.Millisecond || took > commandWait+time.Second {
				t.Fatalf("Disconnect(bob with 2 connections) = %d after %s, want 2 after about %s", n, took, commandWait)
			}
			checkKicked(t, bobs, alice)
		})
	}
}

// outageBroker is a memory broker whose Subscribe and Publish fail once
// down is set.
type outageBroker struct {
	*partyline.MemoryBroker
	down atomic.Bool
}

// errBrokerDown is the outageBroker's error while down.
var errBrokerDown = fmt.Errorf("test broker down: %w", partyline.ErrUnavailable)

func (b *outageBroker) Subscribe(ctx context.Context, topic string) error {
	if b.down.Load() {
		return errBrokerDown
	}
	return b.MemoryBroker.Subscribe(ctx, topic)
}

func (b *outageBroker) PublishCount(ctx context.Context, topic string, payload []byte) (int, error) {
	if b.down.Load() {
		return 0, errBrokerDown
	}
	return b.MemoryBroker.PublishCount(ctx, topic, payload)
}

// TestDisconnectWithTheBrokerDown: when the broker cannot take the kick —
// be it the subscription to this node's replies (the first command) or the
// command itself that fails — this node closes its own connections of the
// user and answers their count with an unavailable error.
func TestDisconnectWithTheBrokerDown(t *testing.T) {
	for _, listening := range []bool{false, true} {
		t.Run(fmt.Sprintf("listening=%v", listening), func(t *testing.T) {
			broker := &outageBroker{MemoryBroker: partyline.NewMemoryBroker()}
			ts := startServer(t, partyline.Options{Broker: broker})
			if listening {
				disconnect(t, ts.Server, "nobody") // subscribes to this node's replies
			}
			bobs, alice := connectBob(t, ts)
			broker.down.Store(true)
			n, err := ts.Disconnect(t.Context(), "bob")
			if n != 2 || partyline.ErrorCode(err) != partyline.CodeUnavailable {
				t.Fatalf("Disconnect(bob) with the broker down = %d, %v; want 2 and unavailable", n, err)
			}
			broker.down.Store(false)
			checkKicked(t, bobs, alice)
		})
	}
}
