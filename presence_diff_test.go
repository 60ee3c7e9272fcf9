package partyline

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// diffOf returns a presenceDiff with the changes given as "+user" (joined)
// and "-user" (left), in order.
func diffOf(changes ...string) *presenceDiff {
	d := &presenceDiff{}
	for _, c := range changes {
		d.add(c[1:], c[0] == '+')
	}
	return d
}

func TestPresenceDiffNetChanges(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	for _, tt := range []struct {
		changes      []string
		joined, left []string
	}{
		{[]string{"+a", "+b", "-c"}, []string{"a", "b"}, []string{"c"}},
		{[]string{"+b", "+a"}, []string{"b", "a"}, nil},  // in the order they came, not sorted
		{[]string{"+a", "-a"}, nil, nil},                 // came and went
		{[]string{"-a", "+a"}, nil, nil},                 // went and came back
		{[]string{"+a", "-a", "+a"}, []string{"a"}, nil}, // came, went, came again
		{[]string{"-a", "+b", "+a", "-a"}, []string{"b"}, []string{"a"}},
		{[]string{"+a", "+b", "-a", "+a"}, []string{"b", "a"}, nil}, // a's net change is its latest
	} {
		f := diffOf(tt.changes...).frame("r", 7, now)
		if !slices.Equal(f.Joined, append([]string{}, tt.joined...)) || !slices.Equal(f.Left, append([]string{}, tt.left...)) ||
			f.Joined == nil || f.Left == nil || f.Count != 7 || f.Room != "r" || f.Timestamp != now.UnixMilli() {
			t.Errorf("changes %q: frame %+v, want joined %q left %q count 7", tt.changes, f, tt.joined, tt.left)
		}
	}
}

func TestPresenceDiffCapsItsLists(t *testing.T) {
	var changes []string
	for i := range 250 {
		changes = append(changes, fmt.Sprintf("+j%03d", i))
	}
	changes = append(changes, "-l1", "-l2")
	f := diffOf(changes...).frame("r", 10_000, time.Now())
	if len(f.Joined) != presenceDiffNames || f.Joined[0] != "j000" || f.Joined[presenceDiffNames-1] != "j099" ||
		f.JoinedMore != 150 || !slices.Equal(f.Left, []string{"l1", "l2"}) || f.LeftMore != 0 {
		t.Fatalf("frame of 250 joins and 2 leaves: %d joined (%q…), %d more, left %q, %d more; want the first %d joined, 150 more, l1 and l2",
			len(f.Joined), f.Joined[:3], f.JoinedMore, f.Left, f.LeftMore, presenceDiffNames)
	}
}

func TestPresenceDiffAddLater(t *testing.T) {
	d := diffOf("+x", "-y")
	d.addLater(diffOf("-x", "+z", "+y"))
	f := d.frame("r", 1, time.Now())
	if !slices.Equal(f.Joined, []string{"z"}) || len(f.Left) != 0 {
		t.Fatalf("frame %+v, want joined z alone (x came and went, y went and came back)", f)
	}
}

// publishLog is a memory broker that keeps what was published.
type publishLog struct {
	*MemoryBroker
	mu       sync.Mutex
	payloads []string
}

func (b *publishLog) Publish(ctx context.Context, topic string, payload []byte) error {
	if e, err := parseEvent(payload); err == nil {
		b.mu.Lock()
		b.payloads = append(b.payloads, string(e.payload))
		b.mu.Unlock()
	}
	return b.MemoryBroker.Publish(ctx, topic, payload)
}

// diffs returns the presence_diff frames published so far.
func (b *publishLog) diffs() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var diffs []map[string]any
	for _, p := range b.payloads {
		var f map[string]any
		if json.Unmarshal([]byte(p), &f) == nil && f["type"] == "presence_diff" {
			diffs = append(diffs, f)
		}
	}
	return diffs
}

// TestDiffGoroutineEndsWhenQuiet: a large room's diff goroutine announces
// a change at once, the next ones an interval later, and ends after a
// quiet interval; nothing runs for a room whose members stay put.
func TestDiffGoroutineEndsWhenQuiet(t *testing.T) {
	broker, presence := &publishLog{MemoryBroker: NewMemoryBroker()}, NewMemoryPresence()
	srv, err := New(Options{Broker: broker, Presence: presence, PresenceListMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ctx := context.Background()
	change := func(user string) {
		presence.Add(ctx, "big", user)
		srv.hub.presenceChanged(ctx, presenceDecision{room: "big", user: user, joined: true}, "", -1)
	}
	running := func() bool {
		srv.hub.diffMu.Lock()
		defer srv.hub.diffMu.Unlock()
		return srv.hub.diffs["big"] != nil
	}

	change("a") // small: published at once as user_joined, no goroutine
	if running() || len(broker.diffs()) != 0 {
		t.Fatalf("a room of one has a diff goroutine (%v) or diffs %v", running(), broker.diffs())
	}
	awaitDiffs := func(n int) []map[string]any {
		deadline := time.Now().Add(5 * presenceDiffInterval)
		for len(broker.diffs()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("diffs %v, want %d", broker.diffs(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return broker.diffs()
	}
	start := time.Now()
	change("b")
	if !running() {
		t.Fatal("no diff goroutine for a room of 2 with a change")
	}
	awaitDiffs(1)
	if took := time.Since(start); took > presenceDiffInterval/2 {
		t.Errorf("first diff after %v, want it at once", took)
	}
	change("c")
	diffs := awaitDiffs(2)
	if fmt.Sprint(diffs[0]["joined"], diffs[1]["joined"]) != "[b] [c]" || diffs[1]["count"] != float64(3) {
		t.Fatalf("diffs %v, want b at once and c an interval later, count 3", diffs)
	}
	if elapsed := time.Since(start); elapsed < presenceDiffInterval*9/10 {
		t.Fatalf("second diff after %v, want an interval", elapsed)
	}
	deadline := time.Now().Add(5 * presenceDiffInterval)
	for running() {
		if time.Now().After(deadline) {
			t.Fatal("the diff goroutine still runs after a quiet interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShutdownAnnouncesPendingDiffs: changes waiting for their room's next
// presence_diff are announced when the hub stops, without waiting out the
// interval, and the diff goroutine is gone once Shutdown returns.
func TestShutdownAnnouncesPendingDiffs(t *testing.T) {
	broker, presence := &publishLog{MemoryBroker: NewMemoryBroker()}, NewMemoryPresence()
	srv, err := New(Options{Broker: broker, Presence: presence, PresenceListMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, user := range []string{"a", "b", "c"} {
		presence.Add(ctx, "big", user)
	}
	srv.hub.presenceChanged(ctx, presenceDecision{room: "big", user: "b", joined: true}, "", -1) // announced at once
	waitFor := time.Now().Add(5 * time.Second)
	for len(broker.diffs()) < 1 && time.Now().Before(waitFor) {
		time.Sleep(5 * time.Millisecond)
	}
	srv.hub.presenceChanged(ctx, presenceDecision{room: "big", user: "c", joined: true}, "", -1) // waits for the interval
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > presenceDiffInterval/2 {
		t.Errorf("Shutdown took %v: it waited for the interval", took)
	}
	diffs := broker.diffs()
	if len(diffs) != 2 || !strings.Contains(fmt.Sprint(diffs[1]["joined"]), "c") {
		t.Fatalf("diffs %v, want c's announced at shutdown", diffs)
	}
	srv.hub.diffMu.Lock()
	defer srv.hub.diffMu.Unlock()
	if len(srv.hub.diffs) != 0 {
		t.Fatalf("diffs pending after Shutdown: %v", srv.hub.diffs)
	}
}
