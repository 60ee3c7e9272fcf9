// Package webhooktest is a real webhook receiver for tests: an HTTP server
// on loopback that verifies each batch's signature and keeps every event it
// was sent, duplicates included, so tests can check what a backend sees.
package webhooktest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline/webhook"
)

// Event is one received event, as decoded JSON.
type Event map[string]any

// Type returns the event's type.
func (e Event) Type() string { s, _ := e["type"].(string); return s }

// String returns the named string field, or "".
func (e Event) String(field string) string { s, _ := e[field].(string); return s }

// Receiver is a webhook endpoint. Its zero value is not usable; call New.
type Receiver struct {
	*httptest.Server
	secret []byte
	// Down makes the receiver answer 503 to everything while it is set.
	Down atomic.Bool

	mu      sync.Mutex // guards the following
	events  []Event
	batches int
	bad     int // batches whose signature did not verify
}

// New starts a receiver that verifies signatures made with secret; it is
// closed when t ends.
func New(t testing.TB, secret string) *Receiver {
	r := &Receiver{secret: []byte(secret)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.Down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if webhook.Verify(r.secret, req.Header.Get(webhook.SignatureHeader), body, time.Now(), time.Minute) != nil {
		r.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var batch struct{ Events []Event }
	if err := json.Unmarshal(body, &batch); err != nil || len(batch.Events) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.batches++
	r.events = append(r.events, batch.Events...)
	w.WriteHeader(http.StatusNoContent)
}

// Events returns the events received so far, in arrival order, and how
// many batches were refused for a bad signature.
func (r *Receiver) Events() (events []Event, badlySigned int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events), r.bad
}

// Matching returns the received events for which keep is true.
func (r *Receiver) Matching(keep func(Event) bool) []Event {
	events, _ := r.Events()
	return slices.DeleteFunc(events, func(e Event) bool { return !keep(e) })
}

// WaitFor waits up to d until at least n received events match keep, and
// returns those that do; it fails t if they do not come in time.
func (r *Receiver) WaitFor(t testing.TB, d time.Duration, n int, what string, keep func(Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := r.Matching(keep)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %d %s events, got %d: %v", d, n, what, len(got), got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitForSeqs waits until room's message events cover seqs 1…total, and
// checks that they arrived in order: a resend after a crash may repeat what
// came before, but never skips ahead. It also fails on a badly signed batch.
func (r *Receiver) WaitForSeqs(t testing.TB, d time.Duration, room string, total uint64) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		events, bad := r.Events()
		if bad > 0 {
			t.Fatalf("%d webhook batches failed signature verification", bad)
		}
		next := uint64(1) // the lowest seq not yet seen
		for _, e := range events {
			if e.Type() != "message" || e.String("room") != room {
				continue
			}
			seq := uint64(e["seq"].(float64))
			if seq > next {
				t.Fatalf("message events of %s out of order: seq %d came before %d", room, seq, next)
			}
			if seq == next {
				next++
			}
		}
		if next > total {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message events of %s reached seq %d of %d in %s", room, next-1, total, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
