package main

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/partyline/partyline/internal/webhooktest"
)

// TestWebhookEventsSurviveSIGKILL acks chats while the webhook receiver
// is down, kills the server with SIGKILL, restarts it on the same file with
// the receiver up, and checks that a message event arrives for every acked
// message, in order.
func TestWebhookEventsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	store := "sqlite:" + filepath.Join(t.TempDir(), "webhooks.db")
	const secret = "whsec-test"
	recv := webhooktest.New(t, secret)
	recv.Down.Store(true) // throughout the first run: every event is pending when it dies
	p := startProcess(t, bin, "--store", store, "--rate-limit", "-1",
		"--webhook-url", recv.URL, "--webhook-secret", secret, "--webhook-events", "message")
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/ws?username=alice&room=lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	const total = 200
	for i := range total {
		ws.WriteJSON(map[string]any{"type": "chat", "content": fmt.Sprint("message ", i), "id": i})
	}
	for acked := 0; acked < total; {
		for _, f := range readFrames(t, ws) {
			if f["type"] == "ack" {
				acked++
			}
		}
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	ws.Close()

	recv.Down.Store(false)
	startProcess(t, bin, "--store", store,
		"--webhook-url", recv.URL, "--webhook-secret", secret, "--webhook-events", "message")
	recv.WaitForSeqs(t, 30*time.Second, "lobby", total)
}
