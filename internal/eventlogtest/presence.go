package eventlogtest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// presence drives one Store's presence methods, failing t on error.
type presence struct {
	t     *testing.T
	store Store
}

func (p presence) joined(room, user string, now time.Time) {
	p.t.Helper()
	if err := p.store.PresenceJoined(testContext(p.t), room, user, now); err != nil {
		p.t.Fatalf("PresenceJoined(%q, %q): %v", room, user, err)
	}
}

func (p presence) left(room, user string, due time.Time) {
	p.t.Helper()
	if err := p.store.PresenceLeft(testContext(p.t), room, user, due); err != nil {
		p.t.Fatalf("PresenceLeft(%q, %q): %v", room, user, err)
	}
}

func (p presence) sweep(now time.Time) {
	p.t.Helper()
	if err := p.store.SweepPresence(testContext(p.t), now); err != nil {
		p.t.Fatalf("SweepPresence: %v", err)
	}
}

// expect fails t unless the presence events pending are want, in order,
// and acknowledges them. It checks that urlAll and urlPresence got the
// same events and urlMessages none.
func (p presence) expect(what string, want ...string) []event {
	p.t.Helper()
	events := expectEvents(p.t, p.store, urlPresence, what, want...)
	expectEvents(p.t, p.store, urlAll, what, want...)
	if n := countPending(p.t, p.store, urlMessages); n != 0 {
		p.t.Errorf("%s: %d events pending for %s, which wants messages only", what, n, urlMessages)
	}
	return events
}

func testPresenceJoined(t *testing.T, b Backend) {
	p := presence{t, open(t, b, routes)}
	p.joined("lobby", "alice", t0)
	events := p.expect("first member joins", "room_occupied lobby", "user_joined lobby alice")
	for _, e := range events {
		if e.Timestamp != t0.UnixMilli() {
			t.Errorf("%s: timestamp %d, want %d (now)", e, e.Timestamp, t0.UnixMilli())
		}
	}
	if events[0].ID == events[1].ID || events[0].ID == "" {
		t.Errorf("event ids %q and %q, want distinct ones", events[0].ID, events[1].ID)
	}
	p.joined("lobby", "bob", t0)
	p.expect("second member joins", "user_joined lobby bob")
	p.joined("lobby", "alice", t0.Add(time.Second))
	p.expect("a member joins again")
	p.joined("dev", "alice", t0)
	p.expect("a member of another room joins", "room_occupied dev", "user_joined dev alice")
}

func testPresenceLeft(t *testing.T, b Backend) {
	p := presence{t, open(t, b, routes)}
	p.joined("lobby", "alice", t0)
	p.joined("lobby", "bob", t0)
	p.take()

	due := t0.Add(3 * time.Second)
	p.left("lobby", "alice", due)
	p.left("lobby", "alice", due.Add(time.Hour)) // already leaving: left as is
	p.left("lobby", "nobody", due)               // not present: nothing
	p.sweep(due.Add(-time.Millisecond))
	p.expect("sweep before the leave is due")
	p.sweep(due)
	events := p.expect("sweep when one of two members' leave is due", "user_left lobby alice")
	if len(events) == 1 && events[0].Timestamp != due.UnixMilli() {
		t.Errorf("user_left: timestamp %d, want %d (the sweep's now)", events[0].Timestamp, due.UnixMilli())
	}
	p.sweep(due.Add(time.Hour))
	p.expect("sweep after the leave was decided")

	p.left("lobby", "bob", due.Add(time.Second))
	p.sweep(due.Add(2 * time.Second))
	p.expect("sweep when the last member's leave is due", "user_left lobby bob", "room_vacated lobby")

	p.joined("lobby", "alice", due.Add(3*time.Second))
	p.expect("a member joins the vacated room", "room_occupied lobby", "user_joined lobby alice")
}

// take acknowledges every pending event.
func (p presence) take() {
	p.t.Helper()
	for _, url := range []string{urlAll, urlMessages, urlPresence} {
		take(p.t, p.store, url)
	}
}

func testPresenceFlap(t *testing.T, b Backend) {
	p := presence{t, open(t, b, routes)}
	p.joined("lobby", "alice", t0)
	p.joined("", "alice", t0)
	p.take()
	due := t0.Add(3 * time.Second)
	p.left("lobby", "alice", due)
	p.left("", "alice", due)
	p.joined("lobby", "alice", t0.Add(time.Second))
	p.joined("", "alice", t0.Add(time.Second))
	p.expect("a leaving user joins again")
	p.sweep(due.Add(time.Hour))
	p.expect("sweep after a called-off leave was due")
	if got, want := presentUsers(t, p.store), []partyline.RoomUser{{Room: "", User: "alice"}, {Room: "lobby", User: "alice"}}; !slices.Equal(got, want) {
		t.Errorf("PresentUsers after a flap = %v, want %v", got, want)
	}
	// The flap left alice an ordinary member: a later leave is decided.
	p.left("lobby", "alice", due.Add(2*time.Hour))
	p.sweep(due.Add(2 * time.Hour))
	p.expect("sweep after a leave following a flap", "user_left lobby alice", "room_vacated lobby")
}

func testPresenceServer(t *testing.T, b Backend) {
	p := presence{t, open(t, b, routes)}
	p.joined("", "alice", t0)
	p.expect("a user comes online", "user_online alice")
	p.joined("", "bob", t0)
	p.expect("a second user comes online", "user_online bob")
	p.joined("", "alice", t0)
	p.expect("an online user comes online again")
	p.left("", "alice", t0.Add(time.Second))
	p.left("", "bob", t0.Add(time.Second))
	p.sweep(t0.Add(time.Second))
	p.expect("two users' leaves are due", "user_offline alice", "user_offline bob")
}

func testPresentUsers(t *testing.T, b Backend) {
	p := presence{t, open(t, b, routes)}
	if got := presentUsers(t, p.store); len(got) != 0 {
		t.Errorf("PresentUsers on empty storage = %v, want none", got)
	}
	p.joined("lobby", "alice", t0)
	p.joined("lobby", "bob", t0)
	p.joined("", "alice", t0)
	p.joined("dev", "carol", t0)
	p.left("lobby", "bob", t0.Add(time.Second))
	want := []partyline.RoomUser{{Room: "", User: "alice"}, {Room: "dev", User: "carol"}, {Room: "lobby", User: "alice"}}
	if got := presentUsers(t, p.store); !slices.Equal(got, want) {
		t.Errorf("PresentUsers with bob leaving lobby = %v, want %v", got, want)
	}
	ctx := testContext(t)
	if due, err := p.store.DueLeaves(ctx, t0); err != nil || len(due) != 0 {
		t.Errorf("DueLeaves before bob's leave is due = %v, %v, want none", due, err)
	}
	bob := []partyline.RoomUser{{Room: "lobby", User: "bob"}}
	if due, err := p.store.DueLeaves(ctx, t0.Add(time.Second)); err != nil || !slices.Equal(due, bob) {
		t.Errorf("DueLeaves when bob's leave is due = %v, %v, want %v", due, err, bob)
	}
	p.sweep(t0.Add(time.Second))
	if got := presentUsers(t, p.store); !slices.Equal(got, want) {
		t.Errorf("PresentUsers after bob left lobby = %v, want %v", got, want)
	}
	if due, err := p.store.DueLeaves(ctx, t0.Add(time.Second)); err != nil || len(due) != 0 {
		t.Errorf("DueLeaves after the sweep = %v, %v, want none", due, err)
	}
}

func testConcurrentJoins(t *testing.T, b Backend) {
	const users = 24
	all := stores(t, b)
	ctx := testContext(t)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			store := all[i%len(all)]
			user := fmt.Sprintf("user%02d", i)
			for _, room := range []string{"crowd", "", "crowd"} {
				if err := store.PresenceJoined(ctx, room, user, t0); err != nil {
					t.Errorf("PresenceJoined(%q, %s): %v", room, user, err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, url := range []string{urlAll, urlPresence} {
		counts := map[string]int{}
		var crowd []string
		for _, e := range take(t, all[0], url) {
			counts[e.String()]++
			if e.Room == "crowd" {
				crowd = append(crowd, e.Type)
			}
		}
		if len(crowd) == 0 || crowd[0] != partyline.EventRoomOccupied {
			t.Errorf("%s: crowd's events start %q, want room_occupied first", url, crowd[:min(len(crowd), 3)])
		}
		want := map[string]int{"room_occupied crowd": 1}
		for i := range users {
			want[fmt.Sprintf("user_joined crowd user%02d", i)] = 1
			want[fmt.Sprintf("user_online user%02d", i)] = 1
		}
		checkCounts(t, url, users, "join at once", counts, want)
	}
}

// checkCounts fails t unless counts, the events of url by description, are
// want.
func checkCounts(t *testing.T, url string, users int, what string, counts, want map[string]int) {
	t.Helper()
	for e, n := range want {
		if counts[e] != n {
			t.Errorf("%s: %d users %s: %q recorded %d times, want %d", url, users, what, e, counts[e], n)
		}
	}
	for e, n := range counts {
		if _, ok := want[e]; !ok {
			t.Errorf("%s: %d users %s: unexpected %q, %d times", url, users, what, e, n)
		}
	}
}

func testConcurrentSweeps(t *testing.T, b Backend) {
	const users, sweepers = 24, 8
	all := stores(t, b)
	p := presence{t, all[0]}
	rooms := []string{"", "r1", "r2", "r3"}
	for i := range users {
		user := fmt.Sprintf("user%02d", i)
		for _, room := range rooms {
			p.joined(room, user, t0)
		}
	}
	// A member of r3 stays, so r3 is not vacated.
	p.joined("r3", "stays", t0)
	p.take()
	due := t0.Add(3 * time.Second)
	for i := range users {
		for _, room := range rooms {
			p.left(room, fmt.Sprintf("user%02d", i), due)
		}
	}
	ctx := testContext(t)
	var wg sync.WaitGroup
	for i := range sweepers {
		wg.Go(func() {
			if err := all[i%len(all)].SweepPresence(ctx, due.Add(time.Duration(i)*time.Millisecond)); err != nil {
				t.Errorf("SweepPresence: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, url := range []string{urlAll, urlPresence} {
		counts := map[string]int{}
		vacated := map[string]bool{}
		for _, e := range take(t, all[0], url) {
			counts[e.String()]++
			switch {
			case e.Type == partyline.EventRoomVacated:
				vacated[e.Room] = true
			case vacated[e.Room]:
				t.Errorf("%s: %q after room_vacated %s", url, e, e.Room)
			}
		}
		want := map[string]int{"room_vacated r1": 1, "room_vacated r2": 1}
		for i := range users {
			user := fmt.Sprintf("user%02d", i)
			want["user_offline "+user] = 1
			for _, room := range rooms[1:] {
				want[fmt.Sprintf("user_left %s %s", room, user)] = 1
			}
		}
		checkCounts(t, url, users, "leave, swept at once", counts, want)
	}
	if got, want := presentUsers(t, p.store), []partyline.RoomUser{{Room: "r3", User: "stays"}}; !slices.Equal(got, want) {
		t.Errorf("PresentUsers after the sweeps = %v, want %v", got, want)
	}
}
