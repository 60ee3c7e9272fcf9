// Package presencetest is the conformance suite every partyline.Presence
// passes: the memory presence and Redis run the same tests.
//
// For a Presence shared by the nodes of a cluster the suite also checks
// node death: a node that stops without removing its users (Close, as a
// process that dies) has them dropped within the TTL, and the surviving
// nodes' PresenceExpirer callbacks report each dropped (room, user) exactly
// once across the cluster.
//
// A Presence shared by a cluster that is a partyline.OrderedPresence has
// its numbers checked.
// A Presence that is a partyline.Counter has its Count checked against
// Users wherever the suite checks Users, and in a case of its own.
package presencetest

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// Backend describes the Presence implementation under test.
type Backend struct {
	// NewStorage creates fresh, empty storage private to t (an in-process
	// one, or a Redis key prefix) and returns how to make nodes on it.
	NewStorage func(t *testing.T) NewNode
	// Cluster reports that the nodes made by one NewNode share their
	// presence, as a cluster's do. Without it, the multi-node tests are
	// skipped: the memory presence serves a node that runs alone. With it,
	// nodes must implement partyline.PresenceExpirer and io.Closer, whose
	// Close stops the node without removing its users, as if it died.
	Cluster bool
	// TTL is the presence TTL NewNode's nodes use; with Cluster, a dead
	// node's users must be gone within it.
	TTL time.Duration
}

// NewNode returns a new Presence: a node on the storage it was returned
// for. The suite closes every node that is an io.Closer.
type NewNode func(t *testing.T) partyline.Presence

// Run runs the conformance suite against b.
func Run(t *testing.T, b Backend) {
	t.Run("AddFirst", func(t *testing.T) { testAddFirst(t, b) })
	t.Run("RemoveLast", func(t *testing.T) { testRemoveLast(t, b) })
	t.Run("UsersSorted", func(t *testing.T) { testUsersSorted(t, b) })
	t.Run("EmptyRoom", func(t *testing.T) { testEmptyRoom(t, b) })
	t.Run("RoomsApart", func(t *testing.T) { testRoomsApart(t, b) })
	t.Run("ServerRoom", func(t *testing.T) { testServerRoom(t, b) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, b) })
	t.Run("Count", func(t *testing.T) { testCount(t, b) })
	if b.Cluster {
		t.Run("TwoNodes", func(t *testing.T) { testTwoNodes(t, b) })
		t.Run("CountTwoNodes", func(t *testing.T) { testCountTwoNodes(t, b) })
		t.Run("ConcurrentFirstLast", func(t *testing.T) { testConcurrentFirstLast(t, b) })
		t.Run("Ordered", func(t *testing.T) { testOrdered(t, b) })
		t.Run("NodeExpiry", func(t *testing.T) { testNodeExpiry(t, b) })
	}
}

// nodes makes n nodes on one fresh storage of b, closed when t ends.
func nodes(t *testing.T, b Backend, n int) []partyline.Presence {
	t.Helper()
	newNode := b.NewStorage(t)
	list := make([]partyline.Presence, n)
	for i := range list {
		list[i] = newNode(t)
		if c, ok := list[i].(io.Closer); ok {
			t.Cleanup(func() { c.Close() })
		}
	}
	return list
}

// testContext returns a context that ends with t, bounded so a hanging
// Presence fails the test instead of stalling it.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// add calls p.Add and fails t unless it returns first.
func add(t *testing.T, p partyline.Presence, room, user string, first bool) {
	t.Helper()
	got, err := p.Add(testContext(t), room, user)
	if err != nil {
		t.Fatalf("Add(%q, %q): %v", room, user, err)
	}
	if got != first {
		t.Fatalf("Add(%q, %q) first = %v, want %v", room, user, got, first)
	}
}

// remove calls p.Remove and fails t unless it returns last.
func remove(t *testing.T, p partyline.Presence, room, user string, last bool) {
	t.Helper()
	got, err := p.Remove(testContext(t), room, user)
	if err != nil {
		t.Fatalf("Remove(%q, %q): %v", room, user, err)
	}
	if got != last {
		t.Fatalf("Remove(%q, %q) last = %v, want %v", room, user, got, last)
	}
}

// checkUsers fails t unless p.Users(room) is want, and not nil, and, when
// p is a partyline.Counter, p.Count(room) is its length.
func checkUsers(t *testing.T, p partyline.Presence, room string, want ...string) {
	t.Helper()
	got, err := p.Users(testContext(t), room)
	if err != nil {
		t.Fatalf("Users(%q): %v", room, err)
	}
	if got == nil {
		t.Fatalf("Users(%q) = nil, want non-nil", room)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Users(%q) = %q, want %q", room, got, want)
	}
	if _, ok := p.(partyline.Counter); ok {
		checkCount(t, p, room, len(want))
	}
}

// checkCount fails t unless p, a partyline.Counter, counts want users in
// room.
func checkCount(t *testing.T, p partyline.Presence, room string, want int) {
	t.Helper()
	got, err := p.(partyline.Counter).Count(testContext(t), room)
	if err != nil {
		t.Fatalf("Count(%q): %v", room, err)
	}
	if got != want {
		t.Fatalf("Count(%q) = %d, want %d", room, got, want)
	}
}

// counter returns the first of nodes, skipping t unless it counts.
func counter(t *testing.T, nodes []partyline.Presence) partyline.Presence {
	t.Helper()
	if _, ok := nodes[0].(partyline.Counter); !ok {
		t.Skipf("%T is not a partyline.Counter", nodes[0])
	}
	return nodes[0]
}

// checkContains fails t unless p.Contains(room, user) is want.
func checkContains(t *testing.T, p partyline.Presence, room, user string, want bool) {
	t.Helper()
	got, err := p.Contains(testContext(t), room, user)
	if err != nil {
		t.Fatalf("Contains(%q, %q): %v", room, user, err)
	}
	if got != want {
		t.Fatalf("Contains(%q, %q) = %v, want %v", room, user, got, want)
	}
}

// Expiries records a PresenceExpirer's reports.
type Expiries struct {
	mu   sync.Mutex // guards the following
	seen map[[2]string]int
}

// NewExpiries returns an empty record.
func NewExpiries() *Expiries { return &Expiries{seen: make(map[[2]string]int)} }

// Expired is the callback to pass to StartExpiry.
func (e *Expiries) Expired(room, user string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen[[2]string{room, user}]++
}

// Count returns how many times (room, user) was reported.
func (e *Expiries) Count(room, user string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[[2]string{room, user}]
}

// Total returns how many reports there were.
func (e *Expiries) Total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.seen {
		n += c
	}
	return n
}
