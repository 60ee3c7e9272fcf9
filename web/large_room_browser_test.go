package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

// TestBrowserLargeRoom: a page that joins a large room shows its count and
// "Too many to list" rather than names; it follows the room's count through
// presence_diff frames, and its join notices name others, never the reader.
// carol and dave are plain WebSocket clients, to spare a browser.
func TestBrowserLargeRoom(t *testing.T) {
	browser := newBrowser(t)
	srv := startServerWith(t, "127.0.0.1:0", partyline.NewMemoryStore(0), serverOptions{presenceListMax: 2})
	wsJoin := func(name string) *wstest.Client {
		c := wstest.Dial(t, "ws://"+srv.addr+"/ws/lobby?username="+name, nil)
		c.Expect("welcome")
		c.WaitFor("online_users")
		// Keep reading, so that the server's pings are answered; the
		// frames do not matter here.
		go func() {
			for {
				if _, err := c.Read(time.Minute); err != nil {
					return
				}
			}
		}()
		return c
	}
	wsJoin("carol")
	dave := wsJoin("dave")

	alice := openPage(t, browser, srv.url(), "alice")
	bob := openPage(t, browser, srv.url(), "bob")
	alice.login("alice", "lobby") // the third: the room is large
	bob.login("bob", "lobby")

	const partialLine = `document.querySelector("#user-list .user-partial")?.textContent === "Too many to list"`
	for _, p := range []*browserPage{alice, bob} {
		p.waitFor("4 online", `document.getElementById("room-count").textContent === "4 online"`)
		p.waitFor("the partial line", partialLine)
		if n := eval[int](p, `document.querySelectorAll("#user-list [data-user]").length`); n != 0 {
			t.Errorf("%s's page lists %d users of a large room, want none", p.name, n)
		}
		if got := eval[string](p, `document.getElementById("users-count").textContent`); got != "4" {
			t.Errorf("%s's online list counts %q, want \"4\"", p.name, got)
		}
	}
	// alice is told of bob in a presence_diff; neither page tells its
	// reader of their own arrival.
	alice.waitFor("the notice of bob", `[...document.querySelectorAll(".pane:not([hidden]) .sys")].some((e) => e.textContent.endsWith("bob joined"))`)
	for _, p := range []*browserPage{alice, bob} {
		notices := eval[[]string](p, `[...document.querySelectorAll(".pane:not([hidden]) .sys")].map((e) => e.lastChild.textContent)`)
		for _, n := range notices {
			if strings.Contains(n, p.name) {
				t.Errorf("%s's page shows the notice %q, which names its own reader", p.name, n)
			}
		}
	}

	dave.Conn.Close()
	for _, p := range []*browserPage{alice, bob} {
		p.waitFor("3 online after dave left", `document.getElementById("room-count").textContent === "3 online"`)
		p.waitFor("the notice of dave leaving", `[...document.querySelectorAll(".pane:not([hidden]) .sys")].some((e) => e.textContent.endsWith("dave left"))`)
		p.waitFor("the partial line, still", partialLine)
	}
}
