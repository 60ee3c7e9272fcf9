package partyline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// checkSeqs fails unless seqs runs from first without a gap or duplicate.
func checkSeqs(t *testing.T, who string, seqs []uint64, first uint64) {
	t.Helper()
	for i, seq := range seqs {
		if seq != first+uint64(i) {
			t.Fatalf("%s: message %d has seq %d, want %d", who, i, seq, first+uint64(i))
		}
	}
}

// TestQueuedMessagesLeaveAsOneFrame has a subscriber stop reading for a
// moment while a burst is published. On loopback the kernel takes the
// first megabytes (a send buffer starts near 4 MB there); what queues up
// behind them reaches the subscriber merged, several "\n"-separated
// objects in one WebSocket message, in order.
func TestQueuedMessagesLeaveAsOneFrame(t *testing.T) {
	const total = 2000
	ts := startServer(t, partyline.Options{RateLimit: -1, SendQueue: total, MaxLag: -1, Store: partyline.NewMemoryStore(0)})
	slow := ts.dialSmallBuffer(t, "/ws?username=slow&room=lobby")
	slow.Expect("welcome")
	slow.Expect("joined")
	slow.Expect("online_users")
	content := strings.Repeat("y", 4<<10) // 8 MB in all
	for i := range total {
		if _, err := ts.Publish(context.Background(), "lobby", partyline.Publication{Content: fmt.Sprint(i, content)}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	var seqs []uint64
	merged := 0
	for len(seqs) < total {
		slow.Conn.SetReadDeadline(time.Now().Add(waitTime))
		kind, data, err := slow.Conn.ReadMessage()
		if err != nil || kind != websocket.TextMessage {
			t.Fatalf("after %d chats: message type %d, %v", len(seqs), kind, err)
		}
		lines := bytes.Split(data, []byte("\n"))
		if len(lines) > 1 {
			merged++
		}
		for _, line := range lines {
			var f wstest.Frame
			if err := json.Unmarshal(line, &f); err != nil {
				t.Fatalf("line of a %d-line message: %v", len(lines), err)
			}
			seqs = append(seqs, f.Num("seq"))
		}
	}
	checkSeqs(t, "slow subscriber", seqs, 1)
	t.Logf("%d of the WebSocket messages carried several chats", merged)
	if merged == 0 {
		t.Errorf("%d messages arrived in %d WebSocket messages with one object each; want the queued ones merged", total, total)
	}
}
