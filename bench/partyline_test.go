package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// startPartyline serves a real hub over loopback and returns its ws:// URL.
func startPartyline(t *testing.T) string {
	t.Helper()
	srv, err := partyline.New(partyline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	mux.Handle("/ws/{room}", srv)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

func TestSmokeFanoutAgainstPartyline(t *testing.T) {
	cfg := shortConfig(startPartyline(t), Fanout)
	cfg.Subscribers, cfg.Publishers, cfg.Rate = 20, 2, 20
	res := runOK(t, cfg)
	checkDelivery(t, res, 20)
}

func TestSmokeRoomsAgainstPartyline(t *testing.T) {
	cfg := shortConfig(startPartyline(t), Rooms)
	cfg.Connections, cfg.Rooms, cfg.Rate = 12, 4, 2
	res := runOK(t, cfg)
	checkDelivery(t, res, 3)
}

func TestSmokeIdleAgainstPartyline(t *testing.T) {
	cfg := shortConfig(startPartyline(t), Idle)
	cfg.Connections, cfg.Rooms = 10, 2
	res := runOK(t, cfg)
	if res.Connected != 10 || res.NotReady != 0 || len(res.Closed) != 0 || res.ErrorFrames != 0 {
		t.Errorf("connected %d not ready %d closed %v error frames %d: want 10 quiet ready connections",
			res.Connected, res.NotReady, res.Closed, res.ErrorFrames)
	}
}
