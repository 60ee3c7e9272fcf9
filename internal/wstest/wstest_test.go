package wstest_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/partyline/partyline/internal/wstest"
)

// serve answers each connection with script, run on the server side.
func serve(t *testing.T, script func(*websocket.Conn)) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		script(conn)
	}))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

func TestBatchSplitAndClose(t *testing.T) {
	url := serve(t, func(conn *websocket.Conn) {
		var got map[string]any
		if err := conn.ReadJSON(&got); err != nil || got["type"] != "hello" {
			return
		}
		conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","n":3}`+"\n"+`{"type":"noise"}`+"\n"+`{"type":"list","users":["a",1,"b"]}`))
		conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4009, "slow"))
		conn.ReadMessage() // until the client answers the close
	})
	c := wstest.Dial(t, url, nil)
	c.Send(map[string]any{"type": "hello"})
	if f := c.Expect("welcome"); f.Num("n") != 3 || f.Str("missing") != "" {
		t.Errorf("welcome = %v, want n 3 and no missing field", f)
	}
	f := c.WaitFor("list")
	if got, want := f.Strings("users"), []string{"a", "", "b"}; !slices.Equal(got, want) {
		t.Errorf("Strings(users) = %q, want %q", got, want)
	}
	if code := c.CloseCode(); code != 4009 {
		t.Errorf("CloseCode() = %d, want 4009", code)
	}
}

func TestCloseCodeWithoutCloseFrame(t *testing.T) {
	url := serve(t, func(conn *websocket.Conn) {
		conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome"}`))
		conn.NetConn().Close()
	})
	c := wstest.Dial(t, url, nil)
	if code := c.CloseCode(); code != websocket.CloseAbnormalClosure {
		t.Errorf("CloseCode() after a dropped connection = %d, want %d", code, websocket.CloseAbnormalClosure)
	}
}

func TestReadTimeout(t *testing.T) {
	release := make(chan struct{})
	url := serve(t, func(*websocket.Conn) { <-release })
	defer close(release)
	c := wstest.Dial(t, url, nil)
	if f, err := c.Read(20 * time.Millisecond); err == nil {
		t.Errorf("Read on a silent connection = %v, want a timeout", f)
	}
}
