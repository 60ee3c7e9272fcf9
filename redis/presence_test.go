package redis_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/presencetest"
	"github.com/partyline/partyline/redis"
)

// mustAdd adds user to room on p, failing t on error.
func mustAdd(t *testing.T, p partyline.Presence, room, user string) {
	t.Helper()
	if _, err := p.Add(t.Context(), room, user); err != nil {
		t.Fatalf("Add(%q, %q): %v", room, user, err)
	}
}

// users returns p.Users(room), failing t on error.
func users(t *testing.T, p partyline.Presence, room string) []string {
	t.Helper()
	list, err := p.Users(t.Context(), room)
	if err != nil {
		t.Fatalf("Users(%q): %v", room, err)
	}
	return list
}

func TestPresenceRooms(t *testing.T) {
	u := testURL(t)
	p := open(t, u, redis.Options{Prefix: newPrefix(t, u)}).Presence()
	rooms := func() []string {
		t.Helper()
		list, err := p.Rooms(t.Context())
		if err != nil {
			t.Fatalf("Rooms: %v", err)
		}
		return list
	}
	if got := rooms(); got == nil || len(got) != 0 {
		t.Fatalf("Rooms with nobody = %#v, want []", got)
	}
	mustAdd(t, p, "zoo", "ann")
	mustAdd(t, p, "lobby", "bob")
	mustAdd(t, p, "", "bob")
	if got, want := rooms(), []string{"lobby", "zoo"}; !slices.Equal(got, want) {
		t.Fatalf("Rooms = %q, want %q", got, want)
	}
	if _, err := p.Remove(t.Context(), "zoo", "ann"); err != nil {
		t.Fatal(err)
	}
	if got, want := rooms(), []string{"lobby"}; !slices.Equal(got, want) {
		t.Fatalf("Rooms after the last user left zoo = %q, want %q", got, want)
	}
}

// TestPresenceRestore checks that a node whose entries Redis lost (a
// restart without persistence, or being reaped while cut off) records its
// users again by itself.
//
// Nobody was told they left, so nobody is told they are back: the restore
// reports nothing.
func TestPresenceRestore(t *testing.T) {
	u := testURL(t)
	prefix := newPrefix(t, u)
	p := open(t, u, redis.Options{Prefix: prefix, PresenceTTL: testTTL}).Presence()
	restored := presencetest.NewExpiries()
	p.StartRestore(restored.Expired)
	mustAdd(t, p, "lobby", "bob")
	mustAdd(t, p, "", "bob")
	deleteKeys(t, u, prefix)
	// The node restores its entries at its next refresh, within the TTL;
	// twice that leaves room for a loaded machine (CI runs under -race).
	if !waitFor(2*testTTL, func() bool { return slices.Equal(users(t, p, "lobby"), []string{"bob"}) }) {
		t.Fatalf("Users(lobby) = %q %v after Redis lost the keys, want [bob]", users(t, p, "lobby"), 2*testTTL)
	}
	if got := users(t, p, ""); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf(`Users("") = %q, want [bob]`, got)
	}
	if n := restored.Total(); n != 0 {
		t.Fatalf("%d pairs reported back online after Redis lost its data, want none", n)
	}
	if last, err := p.Remove(t.Context(), "lobby", "bob"); err != nil || !last {
		t.Fatalf("Remove = %v, %v; want true, nil", last, err)
	}
}

// TestPresenceRestoreAfterReaping: a node cut off from Redis for longer
// than the TTL has its users reaped by another node, which reports them
// gone; once back, the node records them again and reports them back
// online, within about a second of Redis answering it again.
func TestPresenceRestoreAfterReaping(t *testing.T) {
	u := testURL(t)
	prefix := newPrefix(t, u)
	px := newProxy(t, hostOf(t, u))
	p := open(t, withHost(t, u, px.addr), redis.Options{Prefix: prefix, PresenceTTL: testTTL, Timeout: outageTimeout}).Presence()
	other := open(t, u, redis.Options{Prefix: prefix, PresenceTTL: testTTL}).Presence()
	gone, back := presencetest.NewExpiries(), presencetest.NewExpiries()
	other.StartExpiry(gone.Expired)
	p.StartRestore(back.Expired)
	mustAdd(t, p, "lobby", "bob")

	px.cut()
	if !waitFor(2*testTTL, func() bool { return gone.Count("lobby", "bob") == 1 }) {
		t.Fatalf("the cut-off node's bob was not reaped within %v", 2*testTTL)
	}
	px.restore()
	if !waitFor(3*time.Second, func() bool { return back.Count("lobby", "bob") == 1 }) {
		t.Fatalf("bob was not reported back online within 3 s of Redis answering his node again")
	}
	if got := users(t, other, "lobby"); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("Users(lobby) after the restore = %q, want [bob]", got)
	}
}

// TestPresenceOutage checks that presence calls fail fast while Redis is
// unreachable, and that a Remove that failed is carried out, and reported
// to the expiry callback, once Redis is back.
func TestPresenceOutage(t *testing.T) {
	u := testURL(t)
	prefix := newPrefix(t, u)
	const ttl = 20 * time.Second // far longer than the outage: nobody reaps
	px := newProxy(t, hostOf(t, u))
	p := open(t, withHost(t, u, px.addr), redis.Options{Prefix: prefix, PresenceTTL: ttl, Timeout: outageTimeout}).Presence()
	other := open(t, u, redis.Options{Prefix: prefix, PresenceTTL: ttl}).Presence()
	expiries := presencetest.NewExpiries()
	p.StartExpiry(expiries.Expired)
	other.StartExpiry(expiries.Expired)
	mustAdd(t, p, "lobby", "bob")
	mustAdd(t, p, "lobby", "ann")

	px.cut()
	limit := outageTimeout + time.Second
	ctx := context.Background()
	calls := map[string]func() error{
		"Add":      func() error { _, err := p.Add(ctx, "lobby", "cy"); return err },
		"Remove":   func() error { _, err := p.Remove(ctx, "lobby", "bob"); return err },
		"Users":    func() error { _, err := p.Users(ctx, "lobby"); return err },
		"Contains": func() error { _, err := p.Contains(ctx, "lobby", "bob"); return err },
		"Rooms":    func() error { _, err := p.Rooms(ctx); return err },
		"Ping":     func() error { return p.Ping(ctx) },
	}
	for name, call := range calls {
		err, took := timed(call)
		checkUnavailable(t, name, err, took, limit)
	}
	px.restore()

	if !waitFor(ttl/2, func() bool { return expiries.Count("lobby", "bob") > 0 }) {
		t.Fatalf("the failed Remove of bob was not reported within %v of Redis coming back", ttl/2)
	}
	if got, want := users(t, other, "lobby"), []string{"ann"}; !slices.Equal(got, want) {
		t.Fatalf("Users(lobby) after the outage = %q, want %q", got, want)
	}
	if n := expiries.Total(); n != 1 {
		t.Errorf("%d expiry reports, want 1 (lobby, bob)", n)
	}
	if first, err := p.Add(t.Context(), "lobby", "cy"); err != nil || !first {
		t.Errorf("Add after the outage = %v, %v; want true, nil", first, err)
	}
}

func TestPresenceBadNames(t *testing.T) {
	u := testURL(t)
	p := open(t, u, redis.Options{Prefix: newPrefix(t, u)}).Presence()
	for _, pair := range [][2]string{{"lob\x00by", "bob"}, {"lobby", "b\x00b"}} {
		_, err := p.Add(t.Context(), pair[0], pair[1])
		if err == nil || errors.Is(err, partyline.ErrUnavailable) {
			t.Errorf("Add(%q, %q): err = %v, want a refusal", pair[0], pair[1], err)
		}
	}
}

func TestPresenceClosed(t *testing.T) {
	u := testURL(t)
	p := open(t, u, redis.Options{Prefix: newPrefix(t, u)}).Presence()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Add(t.Context(), "lobby", "bob"); err == nil {
		t.Error("Add after Close succeeded, want an error")
	}
}
