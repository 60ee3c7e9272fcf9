package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeServer speaks just enough of the protocol for the bench: welcome,
// joined and online_users batched in one frame, chat fan-out to the room
// (sender included) with seqs, join with since (a replay from its log),
// optional pings, and, for the overload scenario, slow-consumer eviction of
// chosen users. It lets the bench be tested against a server other than
// partyline, as it is meant to be used.
type fakeServer struct {
	pingEvery time.Duration
	dropEvery int64 // drop every n-th chat delivery; 0 = none
	silent    bool  // never send welcome or joined
	bigHello  int   // bytes of padding added to the greeting
	compress  bool  // accept permessage-deflate, and compress every message then
	// evict closes the first connection of each of these users with 4009
	// once it has received evictAfter chats.
	evict      []string
	evictAfter int

	deliveries atomic.Int64
	mu         sync.Mutex // guards the following; held while fanning out
	rooms      map[string]map[*fakeConn]bool
	seqs       map[string]uint64   // each room's last seq
	logs       map[string][][]byte // each room's chats, by seq - 1
	evicted    map[string]bool     // users evicted once already
}

type fakeConn struct {
	user     string
	received int             // chats written to it; guarded by fakeServer.mu
	joined   map[string]bool // rooms joined by message; guarded by fakeServer.mu
	mu       sync.Mutex      // serializes writes
	ws       *websocket.Conn
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
	f.seqs, f.logs, f.evicted = map[string]uint64{}, map[string][][]byte{}, map[string]bool{}
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
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, EnableCompression: f.compress}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	c := &fakeConn{user: user, ws: ws, joined: map[string]bool{}}
	rooms := r.URL.Query()["room"]
	f.join(c, rooms)
	defer f.leave(c, rooms)
	defer f.leaveJoined(c)
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
		f.handle(c, msg)
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

func (f *fakeServer) leaveJoined(c *fakeConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for room := range c.joined {
		delete(f.rooms[room], c)
	}
}

// handle answers a client message: a chat is fanned out to its room, a
// join with since replays the room's log after since, then goes live.
func (f *fakeServer) handle(from *fakeConn, msg []byte) {
	var in struct {
		Type, Room, Content string
		Since               uint64
	}
	if json.Unmarshal(msg, &in) != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch in.Type {
	case "join":
		from.write([]byte(fmt.Sprintf(`{"type":"joined","room":%q,"seq":%d,"recovered":true}`+"\n"+
			`{"type":"online_users","room":%q,"users":[%q],"content":%q}`, in.Room, f.seqs[in.Room], in.Room, from.user, from.user)))
		for _, out := range f.logs[in.Room][min(in.Since, f.seqs[in.Room]):] {
			from.write(out)
		}
		from.joined[in.Room] = true
		if f.rooms[in.Room] == nil {
			f.rooms[in.Room] = map[*fakeConn]bool{}
		}
		f.rooms[in.Room][from] = true
	case "chat":
		f.seqs[in.Room]++
		out, _ := json.Marshal(map[string]any{
			"type": "chat", "room": in.Room, "username": from.user, "content": in.Content,
			"timestamp": time.Now().UnixMilli(), "seq": f.seqs[in.Room], "id": "m1",
		})
		f.logs[in.Room] = append(f.logs[in.Room], out)
		for c := range f.rooms[in.Room] {
			if n := f.deliveries.Add(1); f.dropEvery > 0 && n%f.dropEvery == 0 {
				continue
			}
			if c.received++; c.received > f.evictAfter && slices.Contains(f.evict, c.user) && !f.evicted[c.user] {
				f.evicted[c.user] = true
				delete(f.rooms[in.Room], c)
				c.mu.Lock()
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4009, "slow consumer; retry after 50ms"), time.Now().Add(time.Second))
				c.mu.Unlock()
				continue
			}
			c.write(out)
		}
	}
}
