package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline/webhook"
)

var secret = []byte("whsec_test")

const batch = `{"events":[` +
	`{"id":"evt_1","type":"user_online","timestamp":1767225600000,"username":"alice"},` +
	`{"id":"evt_2","type":"message","timestamp":1767225600001,"room":"lobby","seq":1,"message_id":"m1","username":"alice","content":"hi"}]}`

// lockedBuffer collects what the receiver prints.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func post(t *testing.T, url, body, signature string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set(webhook.SignatureHeader, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReceiver(t *testing.T) {
	var out lockedBuffer
	srv := httptest.NewServer(newReceiver(secret, &out, 100))
	defer srv.Close()
	now := time.Now()
	good := webhook.Sign(secret, now, []byte(batch))

	if code := post(t, srv.URL, batch, good); code != http.StatusNoContent {
		t.Fatalf("signed batch: status %d, want 204", code)
	}
	printed := out.String()
	if !strings.Contains(printed, `user_online {"id":"evt_1"`) || !strings.Contains(printed, `message {"id":"evt_2"`) {
		t.Errorf("printed %q, want both events", printed)
	}

	// The same batch again, as a retry: accepted, not printed twice.
	if code := post(t, srv.URL, batch, good); code != http.StatusNoContent {
		t.Errorf("repeated batch: status %d, want 204", code)
	}
	if again := out.String(); again != printed {
		t.Errorf("a repeated batch printed again: %q", again[len(printed):])
	}

	tampered := strings.Replace(batch, `"content":"hi"`, `"content":"HI"`, 1)
	rotated := webhook.Sign([]byte("old secret"), now, []byte(batch)) + "," + good[strings.Index(good, "v1="):]
	for name, tc := range map[string]struct{ body, sig string }{
		"tampered body":    {tampered, good},
		"wrong secret":     {batch, webhook.Sign([]byte("other"), now, []byte(batch))},
		"old timestamp":    {batch, webhook.Sign(secret, now.Add(-10*time.Minute), []byte(batch))},
		"no signature":     {batch, ""},
		"garbage":          {batch, "t=,v1=zz"},
		"rotation (valid)": {batch, rotated},
	} {
		want := http.StatusUnauthorized
		if name == "rotation (valid)" {
			want = http.StatusNoContent
		}
		if code := post(t, srv.URL, tc.body, tc.sig); code != want {
			t.Errorf("%s: status %d, want %d", name, code, want)
		}
	}
	if strings.Contains(out.String(), "HI") {
		t.Errorf("the tampered event was printed: %q", out.String())
	}
}

func TestReceiverForgetsOldIDs(t *testing.T) {
	rc := newReceiver(secret, &bytes.Buffer{}, 2)
	for _, id := range []string{"a", "b", "c"} {
		if rc.seen(id) {
			t.Fatalf("seen(%q) = true for a new id", id)
		}
		rc.remember(id)
	}
	if !rc.seen("c") || !rc.seen("b") {
		t.Error("a recent id was not remembered")
	}
	if rc.seen("a") {
		t.Error("the oldest id was not forgotten past the bound")
	}
	if len(rc.acted) != 2 {
		t.Errorf("remembers %d ids, want at most 2", len(rc.acted))
	}
}

// failingOnce fails its first write, then writes to the buffer.
type failingOnce struct {
	failed atomic.Bool
	lockedBuffer
}

func (f *failingOnce) Write(p []byte) (int, error) {
	if f.failed.CompareAndSwap(false, true) {
		return 0, errors.New("disk full")
	}
	return f.lockedBuffer.Write(p)
}

func TestReceiverActsOnARetryAfterAFailure(t *testing.T) {
	var out failingOnce
	srv := httptest.NewServer(newReceiver(secret, &out, 100))
	defer srv.Close()
	good := webhook.Sign(secret, time.Now(), []byte(batch))
	if code := post(t, srv.URL, batch, good); code != http.StatusInternalServerError {
		t.Fatalf("a batch whose first event could not be acted on: status %d, want 500", code)
	}
	if code := post(t, srv.URL, batch, good); code != http.StatusNoContent {
		t.Fatalf("the retry: status %d, want 204", code)
	}
	if printed := out.String(); !strings.Contains(printed, `"id":"evt_1"`) || !strings.Contains(printed, `"id":"evt_2"`) {
		t.Errorf("printed %q after the retry, want both events", printed)
	}
}
