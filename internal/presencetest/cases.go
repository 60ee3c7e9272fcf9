package presencetest

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

func testAddFirst(t *testing.T, b Backend) {
	p := nodes(t, b, 1)[0]
	checkContains(t, p, "lobby", "bob", false)
	add(t, p, "lobby", "bob", true)
	checkContains(t, p, "lobby", "bob", true)
	add(t, p, "lobby", "ann", true)
	checkUsers(t, p, "lobby", "ann", "bob")
}

func testRemoveLast(t *testing.T, b Backend) {
	p := nodes(t, b, 1)[0]
	add(t, p, "lobby", "bob", true)
	add(t, p, "lobby", "ann", true)
	remove(t, p, "lobby", "bob", true)
	checkContains(t, p, "lobby", "bob", false)
	checkUsers(t, p, "lobby", "ann")
	remove(t, p, "lobby", "ann", true)
	checkUsers(t, p, "lobby")
	// Back again: first once more.
	add(t, p, "lobby", "bob", true)
	checkUsers(t, p, "lobby", "bob")
}

func testUsersSorted(t *testing.T, b Backend) {
	p := nodes(t, b, 1)[0]
	for _, u := range []string{"zoe", "Bob", "amy", "bob", "a.b", "9lives", "amy_2"} {
		add(t, p, "room-1", u, true)
	}
	checkUsers(t, p, "room-1", "9lives", "Bob", "a.b", "amy", "amy_2", "bob", "zoe")
}

func testEmptyRoom(t *testing.T, b Backend) {
	p := nodes(t, b, 1)[0]
	checkUsers(t, p, "nobody-here")
	checkContains(t, p, "nobody-here", "bob", false)
}

func testRoomsApart(t *testing.T, b Backend) {
	p := nodes(t, b, 1)[0]
	add(t, p, "a", "bob", true)
	add(t, p, "b", "bob", true) // first in b too
	add(t, p, "b", "ann", true)
	checkUsers(t, p, "a", "bob")
	checkUsers(t, p, "b", "ann", "bob")
	checkContains(t, p, "a", "ann", false)
	remove(t, p, "a", "bob", true)
	checkContains(t, p, "b", "bob", true)
	checkUsers(t, p, "a")
}

func testServerRoom(t *testing.T, b Backend) {
	p := nodes(t, b, 1)[0]
	add(t, p, "", "bob", true)
	add(t, p, "lobby", "ann", true)
	checkUsers(t, p, "", "bob")
	checkContains(t, p, "", "bob", true)
	checkContains(t, p, "", "ann", false)
	checkContains(t, p, "lobby", "bob", false)
	remove(t, p, "", "bob", true)
	checkUsers(t, p, "")
}

func testConcurrent(t *testing.T, b Backend) {
	p := nodes(t, b, 1)[0]
	const workers, users = 8, 25
	ctx := testContext(t)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			room := fmt.Sprintf("r%d", w%2)
			for i := range users {
				user := fmt.Sprintf("w%d-u%02d", w, i)
				if first, err := p.Add(ctx, room, user); err != nil || !first {
					t.Errorf("Add(%q, %q) = %v, %v; want true, nil", room, user, first, err)
				}
				if i%2 == 1 {
					continue
				}
				if last, err := p.Remove(ctx, room, user); err != nil || !last {
					t.Errorf("Remove(%q, %q) = %v, %v; want true, nil", room, user, last, err)
				}
			}
		})
	}
	wg.Wait()
	for r := range 2 {
		var want []string
		for w := r; w < workers; w += 2 {
			for i := 1; i < users; i += 2 {
				want = append(want, fmt.Sprintf("w%d-u%02d", w, i))
			}
		}
		checkUsers(t, p, fmt.Sprintf("r%d", r), want...)
	}
}

// testOrdered checks an OrderedPresence's numbers: one for each first and
// last decision, growing from each to the next whichever node made it, and
// none for the others.
func testOrdered(t *testing.T, b Backend) {
	ns := nodes(t, b, 2)
	a, ok := ns[0].(partyline.OrderedPresence)
	if !ok {
		t.Skip("not an OrderedPresence")
	}
	c := ns[1].(partyline.OrderedPresence)
	ctx := testContext(t)
	var latest uint64
	decide := func(what string, f func() (bool, uint64, error), want bool) {
		t.Helper()
		decided, number, err := f()
		switch {
		case err != nil:
			t.Fatalf("%s: %v", what, err)
		case decided != want:
			t.Fatalf("%s decided %v, want %v", what, decided, want)
		case !decided && number != 0:
			t.Fatalf("%s decided nothing, yet numbered it %d", what, number)
		case decided && number <= latest:
			t.Fatalf("%s numbered %d, after %d", what, number, latest)
		}
		latest = max(latest, number)
	}
	for round := range 5 {
		decide("Add on a", func() (bool, uint64, error) { return a.AddOrdered(ctx, "lobby", "bob") }, true)
		decide("Add on c", func() (bool, uint64, error) { return c.AddOrdered(ctx, "lobby", "bob") }, false)
		decide("Remove on a", func() (bool, uint64, error) { return a.RemoveOrdered(ctx, "lobby", "bob") }, false)
		decide("Remove on c", func() (bool, uint64, error) { return c.RemoveOrdered(ctx, "lobby", "bob") }, true)
		decide("Remove again", func() (bool, uint64, error) { return c.RemoveOrdered(ctx, "lobby", "bob") }, false)
		room := fmt.Sprintf("room-%d", round)
		decide("Add elsewhere", func() (bool, uint64, error) { return c.AddOrdered(ctx, room, "ann") }, true)
	}
}

func testCount(t *testing.T, b Backend) {
	p := counter(t, nodes(t, b, 1))
	checkCount(t, p, "lobby", 0)
	checkCount(t, p, "", 0)
	add(t, p, "lobby", "bob", true)
	add(t, p, "lobby", "ann", true)
	add(t, p, "other", "cy", true)
	add(t, p, "", "bob", true)
	checkCount(t, p, "lobby", 2)
	checkCount(t, p, "other", 1)
	checkCount(t, p, "", 1)
	checkCount(t, p, "lobby-2", 0)
	remove(t, p, "lobby", "bob", true)
	checkCount(t, p, "lobby", 1)
	remove(t, p, "lobby", "ann", true)
	checkCount(t, p, "lobby", 0)
	checkCount(t, p, "other", 1)
}

// testCountTwoNodes checks that a user held by two nodes counts once, and
// until the last of them lets go.
func testCountTwoNodes(t *testing.T, b Backend) {
	ns := nodes(t, b, 2)
	a, c := counter(t, ns), ns[1]
	add(t, a, "lobby", "bob", true)
	add(t, c, "lobby", "bob", false)
	add(t, c, "lobby", "ann", true)
	checkCount(t, a, "lobby", 2)
	checkCount(t, c, "lobby", 2)
	remove(t, a, "lobby", "bob", false)
	checkCount(t, c, "lobby", 2)
	remove(t, c, "lobby", "bob", true)
	checkCount(t, a, "lobby", 1)
}

func testTwoNodes(t *testing.T, b Backend) {
	ns := nodes(t, b, 2)
	a, c := ns[0], ns[1]
	add(t, a, "lobby", "bob", true)
	checkContains(t, c, "lobby", "bob", true)
	checkUsers(t, c, "lobby", "bob")
	add(t, c, "lobby", "bob", false) // bob's phone on the other node
	add(t, c, "lobby", "ann", true)
	checkUsers(t, a, "lobby", "ann", "bob")
	remove(t, a, "lobby", "bob", false) // still on c
	checkContains(t, a, "lobby", "bob", true)
	checkUsers(t, a, "lobby", "ann", "bob")
	remove(t, c, "lobby", "bob", true)
	checkContains(t, a, "lobby", "bob", false)
	checkUsers(t, a, "lobby", "ann")
}

func testConcurrentFirstLast(t *testing.T, b Backend) {
	ns := nodes(t, b, 4)
	ctx := testContext(t)
	for round := range 20 {
		user := fmt.Sprintf("u%d", round)
		var firsts, lasts atomic.Int32
		call := func(op func(p partyline.Presence) (bool, error), count *atomic.Int32) {
			var wg sync.WaitGroup
			for _, p := range ns {
				wg.Go(func() {
					ok, err := op(p)
					if err != nil {
						t.Errorf("round %d: %v", round, err)
					}
					if ok {
						count.Add(1)
					}
				})
			}
			wg.Wait()
		}
		call(func(p partyline.Presence) (bool, error) { return p.Add(ctx, "lobby", user) }, &firsts)
		call(func(p partyline.Presence) (bool, error) { return p.Remove(ctx, "lobby", user) }, &lasts)
		if firsts.Load() != 1 || lasts.Load() != 1 {
			t.Fatalf("round %d: %d nodes saw first, %d saw last; want 1 and 1", round, firsts.Load(), lasts.Load())
		}
	}
	checkUsers(t, ns[0], "lobby")
}

func testNodeExpiry(t *testing.T, b Backend) {
	ns := nodes(t, b, 3)
	dead, survivors := ns[0], ns[1:]
	expiries := NewExpiries()
	for _, p := range survivors {
		p.(partyline.PresenceExpirer).StartExpiry(expiries.Expired)
	}
	add(t, dead, "lobby", "bob", true)
	add(t, dead, "", "bob", true)
	add(t, dead, "lobby", "ann", true)
	add(t, survivors[0], "lobby", "ann", false) // ann stays: also elsewhere
	add(t, survivors[1], "lobby", "cy", true)

	died := time.Now()
	if err := dead.(io.Closer).Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	gone := waitFor(t, b.TTL+time.Second, func() bool {
		return expiries.Count("lobby", "bob") > 0 && expiries.Count("", "bob") > 0
	})
	if !gone {
		t.Fatalf("dead node's bob not reported within %v of death (TTL %v)", b.TTL+time.Second, b.TTL)
	}
	t.Logf("reported %v after death (TTL %v)", time.Since(died).Round(time.Millisecond), b.TTL)
	// Give a second reaper the chance to report them again: it must not.
	time.Sleep(b.TTL / 2)
	if n := expiries.Total(); n != 2 {
		t.Errorf("%d reports, want 2: (lobby, bob) %d, (\"\", bob) %d, (lobby, ann) %d",
			n, expiries.Count("lobby", "bob"), expiries.Count("", "bob"), expiries.Count("lobby", "ann"))
	}
	for _, p := range survivors {
		checkUsers(t, p, "lobby", "ann", "cy")
		checkUsers(t, p, "")
	}
	remove(t, survivors[0], "lobby", "ann", true)
}

// waitFor polls cond until it holds or d passes, and reports whether it held.
func waitFor(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
