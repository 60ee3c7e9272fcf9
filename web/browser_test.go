package web_test

// Browser end-to-end tests: the real page, in Debian's headless Chromium,
// against a real partyline hub on a loopback port (harness_test.go).
//
// They skip when /usr/bin/chromium is missing, unless the environment sets
// CI, where they fail instead: CI must install it (apt-get install -y
// chromium). With PARTYLINE_SCREENSHOT=1 TestBrowserChat also saves the page
// in use to docs/screenshot.png.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/partyline/partyline"
)

// ---- the scenarios ----

// TestBrowserChat: people chat in a room and see each other's presence and
// typing; one of them joins a second room, switches between the rooms and
// sees unread counts; the other leaves.
func TestBrowserChat(t *testing.T) {
	browser := newBrowser(t)
	srv := startServer(t, "127.0.0.1:0", partyline.NewMemoryStore(0))
	alice := openPage(t, browser, srv.url(), "alice")
	bob := openPage(t, browser, srv.url(), "bob")
	carol := openPage(t, browser, srv.url(), "carol")

	alice.login("alice", "lobby")
	bob.login("bob", "lobby")
	carol.login("carol", "design")

	// Presence, live: each sees both, and themselves marked.
	alice.waitUsers("alice", "bob")
	bob.waitUsers("alice", "bob")
	if you := eval[string](alice, `document.querySelector('#user-list [data-user="alice"] .user-you')?.textContent ?? ""`); you != "you" {
		t.Errorf("alice's own entry in the online list is marked %q, want \"you\"", you)
	}
	if got := eval[string](alice, `document.getElementById("room-count").textContent`); got != "2 online" {
		t.Errorf("alice's room header says %q, want \"2 online\"", got)
	}

	// Typing, then the message, which ends the typing notice.
	bob.typeText("Hey alice, is the new build up?")
	alice.waitFor("bob's typing notice", `document.getElementById("typing").textContent === "bob is typing…"`)
	bob.pressEnter()
	alice.waitMessages("lobby", 1)
	alice.waitFor("the typing notice to end", `document.getElementById("typing").textContent === ""`)
	if got := eval[string](bob, `document.getElementById("composer-input").value`); got != "" {
		t.Errorf("bob's composer holds %q after sending, want it empty", got)
	}

	alice.send("Yes! Deployed to staging a few minutes ago.")
	bob.send("Nice. Does it survive a server restart?")
	alice.send("Every message, exactly once, in order. Stop the server and keep typing to see.")
	want := []shown{
		{Seq: 1, User: "bob", Text: "Hey alice, is the new build up?"},
		{Seq: 2, User: "alice", Text: "Yes! Deployed to staging a few minutes ago."},
		{Seq: 3, User: "bob", Text: "Nice. Does it survive a server restart?"},
		{Seq: 4, User: "alice", Text: "Every message, exactly once, in order. Stop the server and keep typing to see."},
	}
	for _, p := range []*browserPage{alice, bob} {
		got := p.waitMessages("lobby", 4)
		w := slices.Clone(want)
		for i := range w {
			w[i].Own = w[i].User == p.name
		}
		checkMessages(t, p.name+"'s page", got, w)
	}

	// Presence lines sit where they happened: bob joined before he spoke.
	order := eval[[]string](alice, `[...document.querySelectorAll('.pane[data-room="lobby"] .messages > *')].map((e) => e.classList.contains("sys") ? e.textContent.replace(/^.*?(bob joined)$/, "$1") : e.dataset.seq)`)
	if want := []string{"bob joined", "1", "2", "3", "4"}; !slices.Equal(order, want) {
		t.Errorf("alice's lobby shows %q, want %q", order, want)
	}

	// A second room: a tab of its own, messages kept apart.
	alice.joinRoom("design")
	carol.waitUsers("alice", "carol")
	carol.send("Mockups for the new onboarding flow are in the shared folder.")
	alice.waitMessages("design", 1)
	if got := eval[bool](alice, `document.querySelector('.pane[data-room="lobby"]').hidden`); !got {
		t.Error("alice's lobby pane is visible while the design room is selected")
	}

	// Back to the lobby by clicking its tab; news in design shows as unread.
	alice.click(`.room-tab[data-room="lobby"]`)
	alice.waitFor("the lobby to be selected", `document.getElementById("room-title").textContent === "# lobby"`)
	carol.send("Feedback welcome before Friday.")
	alice.waitFor("an unread count on design", `document.querySelector('.room-tab[data-room="design"] .badge')?.textContent === "1"`)
	if got := len(bob.messages("lobby")); got != 4 {
		t.Errorf("bob, who is not in design, shows %d lobby messages, want 4", got)
	}

	bob.typeText("Trying it right now")
	alice.waitFor("bob's typing notice", `document.getElementById("typing").textContent === "bob is typing…"`)
	if os.Getenv("PARTYLINE_SCREENSHOT") != "" {
		saveScreenshot(t, alice)
	}
	bob.pressEnter()
	alice.waitMessages("lobby", 5)

	// bob leaves: alice sees him go, live.
	bob.click("#leave-room")
	alice.waitUsers("alice")
	alice.waitFor("the line saying bob left", `[...document.querySelectorAll('.pane[data-room="lobby"] .sys')].some((e) => e.textContent.endsWith("bob left"))`)
	bob.waitFor("bob's lobby tab to go", `document.querySelector('.room-tab[data-room="lobby"]') === null`)

	// The selected room's tab is keyboard reachable, and arrow keys switch.
	alice.do("switch rooms with the keyboard",
		chromedp.Focus(chromedp.CSS(`.room-tab[data-room="lobby"]`)),
		chromedp.KeyEvent(kb.ArrowDown),
	)
	alice.waitFor("design to be selected by the keyboard", `document.getElementById("room-title").textContent === "# design"`)
}

// saveScreenshot writes the page to docs/screenshot.png.
func saveScreenshot(t *testing.T, p *browserPage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 760, chromedp.EmulateScale(1.5))); err != nil {
		t.Fatalf("screenshot viewport: %v", err)
	}
	// Let the layout settle at the new size before capturing.
	p.waitFor("the layout at 1280×760", `window.innerWidth === 1280 && document.getElementById("users").offsetWidth > 0`)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile("../docs/screenshot.png", png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("saved docs/screenshot.png (%d bytes)", len(png))
}

// TestBrowserRendersMessagesAsText: a message that is HTML is shown as its
// text, and nothing of it runs.
func TestBrowserRendersMessagesAsText(t *testing.T) {
	browser := newBrowser(t)
	srv := startServer(t, "127.0.0.1:0", partyline.NewMemoryStore(0))
	alice := openPage(t, browser, srv.url(), "alice")
	bob := openPage(t, browser, srv.url(), "bob")
	alice.login("alice", "lobby")
	bob.login("bob", "lobby")

	payloads := []string{
		`<img src=x onerror=alert(1)>`,
		`<script>alert(2)</script><b>bold</b> &amp; <a href="javascript:alert(3)">link</a>`,
	}
	for _, text := range payloads {
		alice.send(text)
	}
	for _, p := range []*browserPage{alice, bob} {
		got := p.waitMessages("lobby", len(payloads))
		for i, text := range payloads {
			if i >= len(got) || got[i].Text != text {
				t.Errorf("%s's page: message %d shows %v, want the text %q", p.name, i, got, text)
			}
		}
		if n := eval[int](p, `document.querySelectorAll("img, script:not([src]), b, a[href]").length`); n != 0 {
			t.Errorf("%s's page has %d img, inline script, b or a elements, want none: a message became HTML", p.name, n)
		}
	}
}

// TestBrowserResumesAfterRestart: the server stops and starts again on the
// same port and store while alice keeps sending. Message 10 is being
// committed when the server stops, so alice never gets its ack; messages
// 11–20 are typed while the server is down. bob is held back after the
// restart until alice has sent everything, so he must resume with since.
// Afterwards both pages show every message exactly once, in seq order, and
// so does the store.
func TestBrowserResumesAfterRestart(t *testing.T) {
	testResumesAfterRestart(t, nil, "websocket")
}

// TestBrowserResumesAfterRestartOverSSE is TestBrowserResumesAfterRestart
// with a server that serves no WebSocket: the pages fall back to
// server-sent events and resume over them.
func TestBrowserResumesAfterRestartOverSSE(t *testing.T) {
	testResumesAfterRestart(t, []string{partyline.TransportSSE}, "sse")
}

// testResumesAfterRestart runs TestBrowserResumesAfterRestart on a server
// that serves transports; the pages must use transport.
func testResumesAfterRestart(t *testing.T, transports []string, transport string) {
	browser := newBrowser(t)
	const total, inFlight = 30, 10
	text := func(i int) string { return fmt.Sprintf("message %02d", i) }
	store := &holdingStore{
		MemoryStore: partyline.NewMemoryStore(0), content: text(inFlight),
		held: make(chan struct{}), release: make(chan struct{}),
	}
	var g gate
	opts := serverOptions{gate: &g, transports: transports}
	srv := startServerWith(t, "127.0.0.1:0", store, opts)
	addr := srv.addr
	alice := openPage(t, browser, srv.url(), "alice")
	bob := openPage(t, browser, srv.url(), "bob")
	alice.login("alice", "resume")
	bob.login("bob", "resume")
	alice.waitTransport(transport)
	bob.waitTransport(transport)

	stopped := make(chan struct{})
	var bobSaw int
	for i := 1; i <= total; i++ {
		alice.send(text(i))
		switch i {
		case inFlight - 1:
			alice.waitMessages("resume", inFlight-1)
			bob.waitMessages("resume", inFlight-1)
		case inFlight:
			select {
			case <-store.held:
			case <-time.After(waitTimeout):
				t.Fatalf("the server never started to store %q", text(inFlight))
			}
			go func() {
				defer close(stopped)
				srv.stop()
			}()
			alice.waitFor("alice's page to say it is reconnecting", `document.getElementById("conn").dataset.state === "reconnecting"`)
			close(store.release) // committed now, but the ack has nowhere to go
		case 20:
			<-stopped
			bob.waitFor("bob's page to say it is reconnecting", `document.getElementById("conn").dataset.state === "reconnecting"`)
			if n := eval[int](alice, `document.querySelectorAll(".msg.is-pending").length`); n < 20-inFlight {
				t.Errorf("alice's page shows %d messages waiting while the server is down, want at least %d", n, 20-inFlight)
			}
			bobSaw = len(bob.messages("resume"))
			g.hold("bob", true)
			srv = startServerWith(t, addr, store, opts)
			alice.waitFor("alice's page to reconnect", `document.getElementById("conn").dataset.state === "connected"`)
		}
	}

	want := make([]shown, total)
	for i := range want {
		want[i] = shown{Seq: i + 1, User: "alice", Text: text(i + 1), Own: true}
	}
	checkMessages(t, "alice's page", alice.waitMessages("resume", total), want)
	if !joinedWithSince(alice.sentFrames(0), "resume", inFlight-1) {
		t.Errorf("alice never re-joined with since %d; she sent %v", inFlight-1, alice.sentFrames(0))
	}
	sends := 0
	for _, f := range alice.sentFrames(0) {
		if f["type"] == "chat" && f["content"] == text(inFlight) {
			sends++
		}
	}
	if sends != 1 {
		t.Errorf("alice sent %q %d times, want once: the replay showed it was stored", text(inFlight), sends)
	}

	// bob comes back only now, and catches up from where he was.
	if state := eval[string](bob, `document.getElementById("conn").dataset.state`); state == "connected" {
		t.Fatalf("bob's page is connected although the server holds him back")
	}
	from := bob.sentCount()
	g.hold("bob", false)
	got := bob.waitMessages("resume", total)
	for i := range want {
		want[i].Own = false
	}
	checkMessages(t, "bob's page", got, want)
	if !joinedWithSince(bob.sentFrames(from), "resume", bobSaw) {
		t.Errorf("bob, who had seen %d messages, did not re-join with since %d; he sent %v", bobSaw, bobSaw, bob.sentFrames(from))
	}

	alice.waitTransport(transport)
	bob.waitTransport(transport)
	checkTransportUsed(t, transport, alice, bob)

	stored, err := store.History(context.Background(), "resume", partyline.HistoryQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != total {
		t.Errorf("the store holds %d messages, want %d (a resent message was stored twice?)", len(stored), total)
	}
	for i, m := range stored {
		if m.Seq != uint64(i+1) || m.Content != text(i+1) {
			t.Errorf("stored message %d is #%d %q, want #%d %q", i, m.Seq, m.Content, i+1, text(i+1))
		}
	}
}

// TestBrowserOverSSE: behind a proxy that refuses WebSocket upgrades, the
// pages fall back to server-sent events, say so, and chat, see presence and
// typing as over WebSocket. (TestBrowserResumesAfterRestartOverSSE falls
// back from a server that serves no WebSocket.)
func TestBrowserOverSSE(t *testing.T) {
	browser := newBrowser(t)
	srv := startServerWith(t, "127.0.0.1:0", partyline.NewMemoryStore(0), serverOptions{refuseUpgrades: true})
	alice := openPage(t, browser, srv.url(), "alice")
	bob := openPage(t, browser, srv.url(), "bob")
	alice.login("alice", "lobby")
	bob.login("bob", "lobby")
	alice.waitTransport("sse")
	bob.waitTransport("sse")
	if got := eval[string](alice, `document.getElementById("conn").title`); !strings.Contains(got, "server-sent events") {
		t.Errorf("alice's status line explains itself as %q, want it to name server-sent events", got)
	}

	// Presence, live.
	alice.waitUsers("alice", "bob")
	bob.waitUsers("alice", "bob")

	// Typing, then the message, which ends the typing notice.
	bob.typeText("Is WebSocket blocked here?")
	alice.waitFor("bob's typing notice", `document.getElementById("typing").textContent === "bob is typing…"`)
	bob.pressEnter()
	alice.waitFor("the typing notice to end", `document.getElementById("typing").textContent === ""`)
	alice.send("Yes, by the proxy. We are on server-sent events.")
	bob.send("Works all the same.")
	want := []shown{
		{Seq: 1, User: "bob", Text: "Is WebSocket blocked here?"},
		{Seq: 2, User: "alice", Text: "Yes, by the proxy. We are on server-sent events."},
		{Seq: 3, User: "bob", Text: "Works all the same."},
	}
	for _, p := range []*browserPage{alice, bob} {
		w := slices.Clone(want)
		for i := range w {
			w[i].Own = w[i].User == p.name
		}
		checkMessages(t, p.name+"'s page", p.waitMessages("lobby", len(want)), w)
	}

	// bob leaves: alice sees him go, live.
	bob.click("#leave-room")
	alice.waitUsers("alice")
	alice.waitFor("the line saying bob left", `[...document.querySelectorAll('.pane[data-room="lobby"] .sys')].some((e) => e.textContent.endsWith("bob left"))`)
	checkTransportUsed(t, "sse", alice, bob)
}

// TestBrowserPrefersWebSocket: with both transports served, the page uses
// WebSocket and says so.
func TestBrowserPrefersWebSocket(t *testing.T) {
	browser := newBrowser(t)
	srv := startServer(t, "127.0.0.1:0", partyline.NewMemoryStore(0))
	p := openPage(t, browser, srv.url(), "erin")
	p.login("erin", "lobby")
	p.waitTransport("websocket")
	p.send("over a WebSocket")
	checkMessages(t, "erin's page", p.waitMessages("lobby", 1), []shown{{Seq: 1, User: "erin", Text: "over a WebSocket", Own: true}})
	checkTransportUsed(t, "websocket", p)
}

// checkTransportUsed checks that the pages sent their frames (joins at
// least) over transport only.
func checkTransportUsed(t *testing.T, transport string, pages ...*browserPage) {
	t.Helper()
	for _, p := range pages {
		ws, sse := p.sentCounts()
		used, other := ws, sse
		if transport == "sse" {
			used, other = sse, ws
		}
		if used == 0 || other != 0 {
			t.Errorf("%s's page sent %d frames over WebSocket and %d over SSE; want them all over %s", p.name, ws, sse, transport)
		}
	}
}

// TestBrowserNarrowScreen: on a phone-sized screen the page fits without
// sideways scrolling and can still chat and switch rooms.
func TestBrowserNarrowScreen(t *testing.T) {
	browser := newBrowser(t)
	srv := startServer(t, "127.0.0.1:0", partyline.NewMemoryStore(0))
	p := openPage(t, browser, srv.url(), "dana")
	p.do("emulate a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(3)))
	p.waitFor("the phone layout", `window.innerWidth === 390`)
	p.login("dana", "lobby")
	p.send("Typing this on my phone, with a link-free long word: supercalifragilisticexpialidocious-supercalifragilisticexpialidocious")
	p.waitMessages("lobby", 1)
	p.joinRoom("random")
	p.send("hello random")
	p.waitMessages("random", 1)

	layout := eval[map[string]float64](p, `(() => {
		const box = (id) => document.getElementById(id).getBoundingClientRect();
		return {
			scroll: document.documentElement.scrollWidth, width: window.innerWidth, height: window.innerHeight,
			composerBottom: box("composer-input").bottom, composerLeft: box("composer-input").left,
			sendRight: box("send").right, tabsTop: document.querySelector(".room-tab").getBoundingClientRect().top,
			msgRight: Math.max(...[...document.querySelectorAll(".msg-text")].map((e) => e.getBoundingClientRect().right)),
		};
	})()`)
	if layout["scroll"] > layout["width"] {
		t.Errorf("the page is %v px wide on a %v px screen: it scrolls sideways", layout["scroll"], layout["width"])
	}
	if layout["composerBottom"] > layout["height"] || layout["composerLeft"] < 0 || layout["sendRight"] > layout["width"] {
		t.Errorf("the composer is not fully on screen: %v", layout)
	}
	if layout["tabsTop"] < 0 || layout["tabsTop"] > layout["height"]/3 {
		t.Errorf("the room tabs are not at the top of the screen: %v", layout)
	}
	if layout["msgRight"] > layout["width"] {
		t.Errorf("a message runs off the screen: %v", layout)
	}
	p.click(`.room-tab[data-room="lobby"]`)
	p.waitFor("the lobby to be selected", `document.getElementById("room-title").textContent === "# lobby"`)
}

// TestBrowserStopsWhenKicked: a connection closed with 4003 is not retried;
// the page says why and offers to reconnect, which restores the room.
func TestBrowserStopsWhenKicked(t *testing.T) {
	browser := newBrowser(t)
	srv := startServer(t, "127.0.0.1:0", partyline.NewMemoryStore(0))
	p := openPage(t, browser, srv.url(), "mallory")
	p.login("mallory", "lobby")
	p.send("before the kick")
	p.waitMessages("lobby", 1)

	n, err := srv.hub.Disconnect(context.Background(), "mallory")
	if err != nil || n != 1 {
		t.Fatalf("Disconnect(mallory) = %d, %v; want 1 connection closed", n, err)
	}
	// "closed" is terminal in partyline.js: no retry is scheduled from it.
	p.waitFor("the page to stop", `document.getElementById("conn").dataset.state === "closed"`)
	if got := eval[string](p, `document.getElementById("notice").textContent`); !strings.Contains(got, "disconnected by the server") {
		t.Errorf("the notice says %q, want it to say the server disconnected us", got)
	}
	if got := srv.hub.Stats().Connections; got != 0 {
		t.Errorf("the server has %d connections after the kick, want 0", got)
	}

	p.click("#notice button")
	p.waitFor("the page to reconnect", `document.getElementById("conn").dataset.state === "connected"`)
	checkMessages(t, "mallory's page", p.waitMessages("lobby", 1), []shown{{Seq: 1, User: "mallory", Text: "before the kick", Own: true}})
}
