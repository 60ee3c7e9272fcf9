package web_test

// The harness of the browser tests (browser_test.go): a partyline hub on a
// loopback port that can be stopped and restarted, headless Chromium, and
// pages driven the way a person would use them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/web"
)

const chromiumPath = "/usr/bin/chromium"

// waitTimeout bounds every wait for the page to reach a state. Generous:
// the race detector and two shared cores slow everything down.
const waitTimeout = 20 * time.Second

// needChromium skips the test when the browser is missing, or fails it when
// CI is set.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("browser tests need %s, and CI is set, so they may not skip: install it with `apt-get install -y chromium` (%v)", chromiumPath, err)
		}
		t.Skipf("skipping browser test: %s is missing (install it with `apt-get install -y chromium`; with CI set this is a failure)", chromiumPath)
	}
}

// ---- the server ----

// server is a partyline hub with the web page, on a real loopback listener
// so that it can be stopped and started again on the same port.
type server struct {
	t     *testing.T
	addr  string
	store partyline.Store
	hub   *partyline.Server
	http  *http.Server
	done  chan error
	once  sync.Once
}

// startServer serves a new hub over store on addr ("127.0.0.1:0" for any
// port), with both transports. A restarted server reuses its predecessor's
// addr and store, so seqs continue.
func startServer(t *testing.T, addr string, store partyline.Store) *server {
	t.Helper()
	return startServerWith(t, addr, store, serverOptions{})
}

// serverOptions are what tests vary in a server.
type serverOptions struct {
	gate        *gate    // in front of the hub's endpoints, to hold back a user's connections; nil for none
	transports  []string // partyline.Options.Transports: nil serves both
	compression bool     // partyline.Options.Compression
	// presenceListMax is partyline.Options.PresenceListMax: 0 for the
	// default, above which a room is large (protocol §5.5).
	presenceListMax int
	// refuseUpgrades refuses every WebSocket handshake with 403 and a page
	// of text, as a proxy that does not allow WebSocket does; plain
	// requests go through.
	refuseUpgrades bool
}

// startServerWith is startServer with options.
func startServerWith(t *testing.T, addr string, store partyline.Store, o serverOptions) *server {
	t.Helper()
	var ln net.Listener
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // the previous server's port is being released
	}
	hub, err := partyline.New(partyline.Options{
		Store:           store,
		Transports:      o.transports,
		Compression:     o.compression,
		PresenceListMax: o.presenceListMax,
		Logger:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("partyline.New: %v", err)
	}
	var endpoints http.Handler = hub
	if o.gate != nil {
		endpoints = o.gate.wrap(endpoints)
	}
	if o.refuseUpgrades {
		endpoints = refuseUpgrades(endpoints)
	}
	mux := http.NewServeMux()
	for _, pattern := range []string{"GET /ws", "GET /ws/{room}", "GET /sse", "GET /sse/{room}", "POST /sse/{session}"} {
		mux.Handle(pattern, endpoints)
	}
	mux.Handle("/", web.Handler())
	s := &server{
		t: t, addr: ln.Addr().String(), store: store, hub: hub,
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.http.Serve(ln) }()
	t.Cleanup(s.stop)
	return s
}

func (s *server) url() string { return "http://" + s.addr + "/" }

// stop closes the listener and every connection, the hub's with 1001, as
// the binary does on SIGTERM. It is safe to call twice.
//
// The HTTP server and the hub shut down at once, where the binary shuts
// the HTTP server down first: an SSE client's POST in flight is a request
// the HTTP server waits for, and it may wait for the store, which a test
// holds until the page has seen its stream close with 1001.
func (s *server) stop() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hubDone := make(chan error, 1)
		go func() { hubDone <- s.hub.Shutdown(ctx) }()
		if err := s.http.Shutdown(ctx); err != nil {
			s.t.Errorf("http shutdown: %v", err)
		}
		if err := <-hubDone; err != nil {
			s.t.Errorf("hub shutdown: %v", err)
		}
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			s.t.Errorf("serve: %v", err)
		}
	})
}

// gate refuses the connections of the users it holds, as a server that is
// still starting would: 503 unavailable, which clients retry, on either
// transport.
type gate struct {
	mu   sync.Mutex // guards held
	held map[string]bool
}

func (g *gate) hold(user string, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held == nil {
		g.held = make(map[string]bool)
	}
	g.held[user] = on
}

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		held := g.held[r.URL.Query().Get("username")]
		g.mu.Unlock()
		if held {
			partyline.WriteHTTPError(w, &partyline.Error{Code: partyline.CodeUnavailable, Message: "held back by the test"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func refuseUpgrades(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "Access denied: WebSocket is not allowed by the proxy policy", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// holdingStore holds the Append of one message until released, so a test
// can stop the server while that message is being committed.
type holdingStore struct {
	*partyline.MemoryStore
	content string        // the message to hold
	held    chan struct{} // closed when its Append starts
	release chan struct{} // closed by the test to let it finish
	once    sync.Once
}

func (s *holdingStore) Append(ctx context.Context, msg partyline.Message) (partyline.Message, error) {
	if msg.Content == s.content {
		s.once.Do(func() { close(s.held) })
		select {
		case <-s.release:
		case <-time.After(waitTimeout):
		}
	}
	return s.MemoryStore.Append(ctx, msg)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// ---- the browser ----

// newBrowser starts a headless Chromium with a fresh profile; the test's end
// stops it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	needChromium(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Two pages share one browser; neither may be throttled as a
		// background tab while the test drives the other.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return ctx
}

// browserPage is one tab in its own browser context (its own storage, as a
// separate person's browser would have).
type browserPage struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu       sync.Mutex // guards the following
	problems []string   // uncaught exceptions and dialogs
	sent     []string   // client frames the page sent: WebSocket text frames and SSE POST bodies
	sentWS   int        // how many of them went over WebSocket
	// extensions holds the Sec-WebSocket-Extensions of each WebSocket
	// handshake's answer.
	extensions []string
}

func openPage(t *testing.T, browser context.Context, url, name string) *browserPage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	p := &browserPage{t: t, name: name, ctx: ctx}
	t.Cleanup(cancel)
	t.Cleanup(p.checkProblems) // runs before cancel
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			p.problem("uncaught exception: %s %s", ev.ExceptionDetails.Text, exceptionDescription(ev.ExceptionDetails))
		case *network.EventWebSocketFrameSent:
			if ev.Response != nil && ev.Response.Opcode == 1 {
				p.mu.Lock()
				p.sent = append(p.sent, string(ev.Response.PayloadData))
				p.sentWS++
				p.mu.Unlock()
			}
		case *network.EventWebSocketHandshakeResponseReceived:
			for name, value := range ev.Response.Headers {
				if strings.EqualFold(name, "Sec-WebSocket-Extensions") {
					p.mu.Lock()
					p.extensions = append(p.extensions, fmt.Sprint(value))
					p.mu.Unlock()
				}
			}
		case *network.EventRequestWillBeSent:
			if ev.Request.Method == http.MethodPost && strings.Contains(ev.Request.URL, "/sse/") {
				var body []byte
				for _, entry := range ev.Request.PostDataEntries {
					body = append(body, entry.Bytes...)
				}
				p.mu.Lock()
				p.sent = append(p.sent, string(body))
				p.mu.Unlock()
			}
		case *page.EventJavascriptDialogOpening:
			p.problem("a %s dialog opened: %q", ev.Type, ev.Message)
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	})
	if err != nil {
		t.Fatalf("%s: listen: %v", name, err)
	}
	p.do("open the page", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("login-name")))
	return p
}

func exceptionDescription(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

func (p *browserPage) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// sentFrames returns the client frames the page has sent since frame from,
// decoded.
func (p *browserPage) sentFrames(from int) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var frames []map[string]any
	for _, raw := range p.sent[min(from, len(p.sent)):] {
		var f map[string]any
		if json.Unmarshal([]byte(raw), &f) == nil {
			frames = append(frames, f)
		}
	}
	return frames
}

func (p *browserPage) sentCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// sentCounts returns how many client frames the page has sent over
// WebSocket and how many as SSE POSTs.
func (p *browserPage) sentCounts() (ws, sse int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sentWS, len(p.sent) - p.sentWS
}

// joinedWithSince reports whether frames hold a join of room resuming after
// seq since.
func joinedWithSince(frames []map[string]any, room string, since int) bool {
	for _, f := range frames {
		if f["type"] == "join" && f["room"] == room && f["since"] == float64(since) {
			return true
		}
	}
	return false
}

func (p *browserPage) checkProblems() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, msg := range p.problems {
		p.t.Errorf("%s's page: %s", p.name, msg)
	}
}

// do runs steps on the page, bounded by waitTimeout.
func (p *browserPage) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %s: %v\n%s", p.name, what, err, p.state())
	}
}

// waitFor polls a JavaScript condition until it holds.
func (p *browserPage) waitFor(what, condition string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](condition,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		p.t.Fatalf("%s: waiting for %s: %v\n%s", p.name, what, err, p.state())
	}
}

// eval evaluates a JavaScript expression on the page.
func eval[T any](p *browserPage, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.name, expr, err)
	}
	return v
}

// state describes the page for a failure message.
func (p *browserPage) state() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		conn: document.getElementById("conn")?.dataset.state,
		transport: document.getElementById("conn")?.dataset.transport,
		room: document.getElementById("room-title")?.textContent,
		typing: document.getElementById("typing")?.textContent,
		users: [...document.querySelectorAll("#user-list [data-user]")].map((e) => e.dataset.user),
		messages: [...document.querySelectorAll(".pane:not([hidden]) .messages > *")].map((e) => e.className + " " + (e.dataset.seq ?? "-") + " " + e.textContent),
	})`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return p.name + "'s page: " + s
}

// ---- what a person does on the page ----

func (p *browserPage) login(username, room string) {
	p.t.Helper()
	p.do("log in",
		chromedp.SendKeys(chromedp.ID("login-name"), username),
		chromedp.SetValue(chromedp.ID("login-room"), room),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
	)
	p.waitFor("the connection", `document.getElementById("conn").dataset.state === "connected"`)
	p.waitFor("the room to open", fmt.Sprintf(`document.querySelector(%s)?.getAttribute("aria-selected") === "true"`, jsString(`.room-tab[data-room="`+room+`"]`)))
}

// transportLabels are the names the status line gives the transports.
var transportLabels = map[string]string{"websocket": "· WebSocket", "sse": "· SSE"}

// waitTransport waits until the page is connected over transport
// ("websocket" or "sse"), and checks that its status line says so.
func (p *browserPage) waitTransport(transport string) {
	p.t.Helper()
	p.waitFor("a connection over "+transport, fmt.Sprintf(
		`document.getElementById("conn").dataset.state === "connected" && document.getElementById("conn").dataset.transport === %s`, jsString(transport)))
	if got, want := eval[string](p, `document.getElementById("conn-transport").textContent`), transportLabels[transport]; got != want {
		p.t.Errorf("%s's status line names the transport %q, want %q", p.name, got, want)
	}
}

// typeText types into the composer without sending.
func (p *browserPage) typeText(text string) {
	p.t.Helper()
	p.do("type", chromedp.SendKeys(chromedp.ID("composer-input"), text))
}

// pressEnter presses Enter in the composer. It sends keyDown and keyUp with
// no char event: SendKeys("\n") adds a char event that real keyboards do not
// produce once keydown is cancelled.
func (p *browserPage) pressEnter() {
	p.t.Helper()
	p.do("press Enter", chromedp.Focus(chromedp.ID("composer-input")), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
				Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
			})
			if err != nil {
				return err
			}
		}
		return nil
	}))
}

func (p *browserPage) send(text string) {
	p.t.Helper()
	p.typeText(text)
	p.pressEnter()
}

func (p *browserPage) click(selector string) {
	p.t.Helper()
	p.do("click "+selector, chromedp.Click(chromedp.CSS(selector)))
}

func (p *browserPage) joinRoom(room string) {
	p.t.Helper()
	p.do("join "+room, chromedp.SendKeys(chromedp.ID("join-room"), room), chromedp.Click(chromedp.CSS(`#join-form button`)))
	p.waitFor("the new room's tab", fmt.Sprintf(`document.querySelector(%s)?.getAttribute("aria-selected") === "true"`, jsString(`.room-tab[data-room="`+room+`"]`)))
}

// shown is a message as the page shows it.
type shown struct {
	Seq     int    `json:"seq"`
	User    string `json:"user"`
	Text    string `json:"text"`
	Own     bool   `json:"own"`
	Pending bool   `json:"pending"`
	Failed  bool   `json:"failed"`
	Time    string `json:"time"`
}

func (m shown) String() string {
	return fmt.Sprintf("#%d %s: %q", m.Seq, m.User, m.Text)
}

// messages returns the messages of a room's pane, top to bottom.
func (p *browserPage) messages(room string) []shown {
	p.t.Helper()
	return eval[[]shown](p, fmt.Sprintf(`[...document.querySelectorAll(%s)].map((e) => ({
		seq: Number(e.dataset.seq ?? 0),
		user: e.dataset.user,
		text: e.querySelector(".msg-text").textContent,
		own: e.classList.contains("msg--own"),
		pending: e.classList.contains("is-pending"),
		failed: e.classList.contains("is-failed"),
		time: e.querySelector("time")?.dateTime ?? "",
	}))`, jsString(`.pane[data-room="`+room+`"] .msg`)))
}

// waitMessages waits until the room shows n stored messages and none pending.
func (p *browserPage) waitMessages(room string, n int) []shown {
	p.t.Helper()
	sel := jsString(`.pane[data-room="` + room + `"]`)
	p.waitFor(fmt.Sprintf("%d messages in %s", n, room), fmt.Sprintf(
		`(() => { const pane = document.querySelector(%s); return pane !== null &&
			pane.querySelectorAll(".msg[data-seq]").length >= %d &&
			pane.querySelectorAll(".msg:not([data-seq])").length === 0; })()`, sel, n))
	return p.messages(room)
}

func (p *browserPage) waitUsers(want ...string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("online users %v", want), fmt.Sprintf(
		`JSON.stringify([...document.querySelectorAll("#user-list [data-user]")].map((e) => e.dataset.user)) === %s`, jsString(mustJSON(want))))
}

func jsString(s string) string { return mustJSON(s) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkMessages compares what a page shows with what it should.
func checkMessages(t *testing.T, who string, got []shown, want []shown) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s shows %d messages, want %d:\n got %v\nwant %v", who, len(got), len(want), got, want)
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.User != w.User || g.Text != w.Text || g.Own != w.Own || g.Pending || g.Failed {
			t.Errorf("%s: message %d is %v (own %v, pending %v, failed %v), want %v (own %v)", who, i, g, g.Own, g.Pending, g.Failed, w, w.Own)
		}
		if _, err := time.Parse(time.RFC3339, g.Time); err != nil {
			t.Errorf("%s: message %v has no valid time: %q", who, g, g.Time)
		}
	}
}
