package partyline_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// hangingStore is a memory store whose History hangs until its context
// ends, as on a database that stopped answering.
type hangingStore struct{ *partyline.MemoryStore }

func (hangingStore) History(ctx context.Context, _ string, _ partyline.HistoryQuery) ([]partyline.Message, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// hangingBroker is a memory broker whose Publish hangs until its context
// ends.
type hangingBroker struct{ *partyline.MemoryBroker }

func (hangingBroker) Publish(ctx context.Context, _ string, _ []byte) error {
	<-ctx.Done()
	return ctx.Err()
}

// hangingPresence is a memory presence whose Users hangs until its context
// ends.
type hangingPresence struct{ *partyline.MemoryPresence }

func (hangingPresence) Users(ctx context.Context, _ string) ([]string, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// backendMetrics is a Metrics that records the backend calls it is told
// of, as "store history failed" or "broker publish ok".
type backendMetrics struct {
	mu    sync.Mutex // guards calls
	calls []string
}

func (*backendMetrics) MessageIn(string)              {}
func (*backendMetrics) MessageOut(int, time.Duration) {}
func (*backendMetrics) Evicted()                      {}
func (*backendMetrics) Refused(string)                {}

func (m *backendMetrics) StoreLatency(op string, _ time.Duration, err error) {
	m.record("store", op, err)
}

func (m *backendMetrics) BrokerLatency(op string, _ time.Duration, err error) {
	m.record("broker", op, err)
}

func (m *backendMetrics) PresenceLatency(op string, _ time.Duration, err error) {
	m.record("presence", op, err)
}

func (m *backendMetrics) record(backend, op string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, fmt.Sprintf("%s %s %s", backend, op, outcome))
}

func (m *backendMetrics) recorded(call string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.calls, call)
}

// TestHangingBackendCallsAreBounded: a Store, Broker or Presence call that
// never answers, made for a caller that set no deadline, ends after the
// server's backend timeout (5 s) with unavailable naming the backend, and
// is counted as a failure in that backend's latency metric.
func TestHangingBackendCallsAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    partyline.Options
		call    func(*partyline.Server) error
		message string // of the unavailable error
		metric  string // the call backendMetrics must have recorded
	}{
		{
			name: "store history",
			opts: partyline.Options{Store: hangingStore{partyline.NewMemoryStore(0)}},
			call: func(s *partyline.Server) error {
				_, err := s.History(context.Background(), "lobby", partyline.HistoryQuery{Limit: 10})
				return err
			},
			message: "store unavailable",
			metric:  "store history failed",
		},
		{
			name: "broker publish of a direct message",
			opts: partyline.Options{Broker: hangingBroker{partyline.NewMemoryBroker()}},
			call: func(s *partyline.Server) error {
				return s.SendDirect(context.Background(), partyline.DirectMessage{To: "bob", Content: "hi"})
			},
			message: "broker unavailable",
			metric:  "broker publish failed",
		},
		{
			name: "presence users of a room",
			opts: partyline.Options{Presence: hangingPresence{partyline.NewMemoryPresence()}},
			call: func(s *partyline.Server) error {
				_, err := s.RoomUsers(context.Background(), "lobby")
				return err
			},
			message: "presence unavailable",
			metric:  "presence users failed",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &backendMetrics{}
			tc.opts.Metrics = m
			ts := startServer(t, tc.opts)
			if tc.opts.Broker != nil {
				// Bob is online, so that the direct message goes to the broker.
				ts.dial(t, "/ws?username=bob")
			}
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- tc.call(ts.Server) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				t.Fatalf("the hanging call was not bounded: still waiting after 15s")
			}
			waited := time.Since(start)
			if code := partyline.ErrorCode(err); code != partyline.CodeUnavailable || partyline.ErrorMessage(err) != tc.message {
				t.Errorf("err = %v, want code %s and message %q", err, partyline.CodeUnavailable, tc.message)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want it to wrap the deadline that ended the call", err)
			}
			if waited < 4*time.Second {
				t.Errorf("the call ended after %v, before the backend timeout", waited)
			}
			if !m.recorded(tc.metric) {
				t.Errorf("metrics recorded %q, want %q among them", m.calls, tc.metric)
			}
		})
	}
}

// hangingAppendStore is a memory store whose Append hangs until its
// context ends, as on a disk that stopped answering.
type hangingAppendStore struct{ *partyline.MemoryStore }

func (hangingAppendStore) Append(ctx context.Context, _ partyline.Message) (partyline.Message, error) {
	<-ctx.Done()
	return partyline.Message{}, ctx.Err()
}

// TestHangingChatCommitsAreBounded: clients' chats share one deadline per
// slice of the backend timeout rather than a timer each (hub.go's
// sharedDeadline), and each is still refused with unavailable once the
// timeout, less at most a slice, has passed. The two chats are sent a
// second apart, so that they fall in different slices.
func TestHangingChatCommitsAreBounded(t *testing.T) {
	t.Parallel()
	ts := startServer(t, partyline.Options{Store: hangingAppendStore{partyline.NewMemoryStore(0)}})
	c := ts.dial(t, "/ws?username=alice&room=lobby")
	c.WaitFor("online_users")
	sent := make(map[uint64]time.Time)
	for id := range uint64(2) {
		if id > 0 {
			time.Sleep(time.Second)
		}
		c.Send(map[string]any{"type": "chat", "content": "hello", "id": id})
		sent[id] = time.Now()
	}
	for range sent {
		f, err := c.Read(15 * time.Second)
		if err != nil {
			t.Fatalf("a hanging commit was not bounded: %v", err)
		}
		if f.Str("type") != "error" || f.Str("code") != partyline.CodeUnavailable || f.Str("message") != "store unavailable" {
			t.Fatalf("got %v, want an unavailable error naming the store", f)
		}
		if waited := time.Since(sent[f.Num("id")]); waited < 4*time.Second {
			t.Errorf("chat %d was refused after %v, before the backend timeout", f.Num("id"), waited)
		}
	}
}
