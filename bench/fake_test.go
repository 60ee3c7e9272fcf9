package bench

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeServer speaks just enough of the protocol for the bench: welcome,
// joined and online_users batched in one frame, chat fan-out to the room
// (sender included), and optional pings. It lets the bench be tested
// against a server other than partyline, as it is meant to be used.
type fakeServer struct {
	pingEvery time.Duration
	dropEvery int64 // drop every n-th chat delivery; 0 = none
	silent    bool  // never send welcome or joined
	bigHello  int   // bytes of padding added to the greeting

	deliveries atomic.Int64
	mu         sync.Mutex // guards rooms
	rooms      map[string]map[*fakeConn]bool
}

type fakeConn struct {
	mu sync.Mutex // serializes writes
	ws *websocket.Conn
}

func (c *fakeConn) write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.WriteMessage(websocket.TextMessage, b)
}

// startFake serves f over loopback and returns its ws:// URL.
func startFake(t *testing.T, f *fakeServer) string {
	t.Helper()
	f.rooms = map[string]map[*fakeConn]bool{}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("username")
	if user == "" {
		http.Error(w, `{"error":{"code":"missing_username"}}`, http.StatusBadRequest)
		return
	}
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	c := &fakeConn{ws: ws}
	rooms := r.URL.Query()["room"]
	f.join(c, rooms)
	defer f.leave(c, rooms)
	if !f.silent {
		c.write(greeting(user, rooms, f.bigHello))
	}
	done := make(chan struct{})
	defer close(done)
	if f.pingEvery > 0 {
		go f.ping(c, done)
	}
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		f.handle(user, msg)
	}
}

func greeting(user string, rooms []string, pad int) []byte {
	lines := []string{`{"type":"welcome","username":"` + user + `","session":"s1","rooms":[],"server":"fake"}`}
	if pad > 0 {
		lines = append(lines, `{"type":"padding","content":"`+strings.Repeat("p", pad)+`"}`)
	}
	for _, room := range rooms {
		lines = append(lines,
			`{"type":"joined","room":"`+room+`","seq":0}`,
			`{"type":"online_users","room":"`+room+`","users":["`+user+`"],"content":"`+user+`"}`)
	}
	return []byte(strings.Join(lines, "\n"))
}

func (f *fakeServer) join(c *fakeConn, rooms []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, room := range rooms {
		if f.rooms[room] == nil {
			f.rooms[room] = map[*fakeConn]bool{}
		}
		f.rooms[room][c] = true
	}
}

func (f *fakeServer) leave(c *fakeConn, rooms []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, room := range rooms {
		delete(f.rooms[room], c)
	}
}

func (f *fakeServer) ping(c *fakeConn, done chan struct{}) {
	t := time.NewTicker(f.pingEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			_ = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
		}
	}
}

// handle fans a chat message out to its room.
func (f *fakeServer) handle(user string, msg []byte) {
	var in struct{ Type, Room, Content string }
	if json.Unmarshal(msg, &in) != nil || in.Type != "chat" {
		return
	}
	out, _ := json.Marshal(map[string]any{
		"type": "chat", "room": in.Room, "username": user, "content": in.Content,
		"timestamp": time.Now().UnixMilli(), "seq": 1, "id": "m1",
	})
	f.mu.Lock()
	members := make([]*fakeConn, 0, len(f.rooms[in.Room]))
	for c := range f.rooms[in.Room] {
		members = append(members, c)
	}
	f.mu.Unlock()
	for _, c := range members {
		if n := f.deliveries.Add(1); f.dropEvery > 0 && n%f.dropEvery == 0 {
			continue
		}
		c.write(out)
	}
}
