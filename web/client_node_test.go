package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

// The tests here run partyline.js in Node, with fakes where the browser's
// network would be, or against a real server.

// nodeScript writes script, with %q standing for the path of partyline.js,
// to a file, and returns node's path and the file's. It skips the test
// when node is missing, unless CI is set.
func nodeScript(t *testing.T, script string) (node, file string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("this test needs node, and CI is set: %v", err)
		}
		t.Skipf("skipping: node is missing (%v)", err)
	}
	lib, err := filepath.Abs("static/partyline.js")
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "script.mjs")
	if err := os.WriteFile(file, fmt.Appendf(nil, script, lib), 0o600); err != nil {
		t.Fatal(err)
	}
	return node, file
}

// runNode runs script (see nodeScript) with args, within a minute, and
// decodes what it printed, one JSON object, into out. It returns the
// output, for messages.
func runNode(t *testing.T, script string, out any, args ...string) []byte {
	t.Helper()
	node, file := nodeScript(t, script)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	printed, err := exec.CommandContext(ctx, node, append([]string{file}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, printed)
	}
	if err := json.Unmarshal(printed, out); err != nil {
		t.Fatalf("node output %q: %v", printed, err)
	}
	return printed
}

// closeScript drives partyline.js in Node over a fake transport that opens
// and is closed at once with the given code and reason: a WebSocket closed
// with them, or an event stream whose last event is a close event carrying
// them (§12.1). It prints the reconnect delay the client chose, or that it
// stopped and why, and what retryAfter parses from the reason.
const closeScript = `
import { connect, retryAfter } from %q;
const [transport, code, reason] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
class FakeSocket {
  constructor() {
    setTimeout(() => {
      this.onopen?.();
      setTimeout(() => this.onclose?.({ code, reason }), 0);
    }, 0);
  }
  send() {}
  close() {}
}
const welcome = { type: "welcome", username: "alice", session: "alice~0123456789abcdef0123456789abcdef", rooms: [] };
const fakeFetch = async () => new Response(
  "data: " + JSON.stringify(welcome) + "\n\n: ping\n\n" +
  "data: " + JSON.stringify({ type: "close", code, reason }) + "\n\n",
  { headers: { "Content-Type": "text/event-stream" } });
const pl = connect({
  url: "ws://example.invalid/ws", username: "alice", heartbeat: 0,
  transports: [transport], WebSocket: FakeSocket, fetch: fakeFetch,
});
let reported = false;
const report = (r) => {
  if (reported) return; // close() below changes the state again
  reported = true;
  console.log(JSON.stringify({ ...r, transport: pl.transport, parsed: retryAfter(reason) }));
  pl.close();
  process.exit(0);
};
pl.on("state", (s) => {
  if (s.state === "reconnecting" && s.delay !== undefined) report({ delay: s.delay });
  if (s.state === "closed") report({ stopped: s.error?.code ?? "none" });
});
`

// TestClientObeysCloseCodes checks, over both transports, that partyline.js
// reconnects no sooner than a 4009 close reason's "retry after", keeps its
// own backoff when a reason asks nothing, and stops when kicked.
func TestClientObeysCloseCodes(t *testing.T) {
	node, script := nodeScript(t, closeScript)
	for _, transport := range []string{"websocket", "sse"} {
		for _, tc := range []struct {
			code         int
			reason       string
			parsed       any
			minMS, maxMS float64
			stopped      string
		}{
			{4009, "slow consumer; retry after 1500ms", 1500.0, 1500, 1500, ""},
			{4009, "slow consumer; retry after 120000ms", 120000.0, 30000, 30000, ""}, // capped at maxDelay
			{4009, "slow consumer", nil, 250, 500, ""},                                // minDelay 500, equal jitter
			{1001, "server shutting down", nil, 250, 500, ""},
			{4003, "kicked", nil, 0, 0, "kicked"},
		} {
			out, err := exec.Command(node, script, transport, fmt.Sprint(tc.code), tc.reason).CombinedOutput()
			if err != nil {
				t.Fatalf("node, %s closed with %d %q: %v\n%s", transport, tc.code, tc.reason, err, out)
			}
			var got struct {
				Delay     float64
				Stopped   string
				Transport string
				Parsed    any
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("node, %s closed with %d %q: output %q: %v", transport, tc.code, tc.reason, out, err)
			}
			if got.Transport != transport {
				t.Errorf("%s closed with %d %q: the client says its transport is %q", transport, tc.code, tc.reason, got.Transport)
			}
			if got.Parsed != tc.parsed || got.Stopped != tc.stopped || got.Delay < tc.minMS || got.Delay > tc.maxMS {
				t.Errorf("%s closed with %d %q: retryAfter %v, reconnect in %v ms, stopped %q; want %v, %v–%v ms, stopped %q",
					transport, tc.code, tc.reason, got.Parsed, got.Delay, got.Stopped, tc.parsed, tc.minMS, tc.maxMS, tc.stopped)
			}
		}
	}
}

// realServerPrelude starts the scripts run against a real server, whose
// URL is their argument: within bounds a promise in time, and cuttable is
// a fetch whose event streams the script can cut (cuts, one per stream)
// and hold back from opening while held is a pending promise.
const realServerPrelude = `
import { Partyline } from %q;
const base = process.argv[2];
const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error("timed out: " + what)), ms));
const within = (p, what) => Promise.race([p, timeout(20000, what)]);
let held = null;
const cuts = [];
const cuttable = async (url, init) => {
  if (init?.method !== "POST") await held;
  const res = await fetch(url, init);
  if (init?.method === "POST" || !res.ok || !res.body) return res;
  const cut = new AbortController();
  const { readable, writable } = new TransformStream();
  res.body.pipeTo(writable, { signal: cut.signal }).catch(() => {});
  cuts.push(cut);
  return new Response(readable, { status: res.status, headers: res.headers });
};
`

// fallbackScript runs two clients against a real server that serves only
// SSE. alice's WebSocket is refused before it opens, as behind a proxy
// that refuses upgrades; her fetch lets the script cut her event stream, as
// a network would. bob uses SSE only. It prints what it saw as JSON.
const fallbackScript = realServerPrelude + `
let wsTries = 0;
class RefusedSocket {
  constructor() {
    wsTries++;
    setTimeout(() => this.onclose?.({ code: 1006, reason: "" }), 0);
  }
  send() {}
  close() {}
}

const out = {};
const alice = new Partyline({
  url: base + "/ws", username: "alice", rooms: ["lobby"],
  WebSocket: RefusedSocket, fetch: cuttable,
  transportRetry: 0, // every reconnect tries WebSocket first again
  maxMessageSize: 1 << 20, // let the server refuse what is too large
});
const seen = [];
const changes = [];
alice.on("message", (m) => seen.push(m.seq + " " + m.content));
alice.on("transport", (t) => changes.push(t));
await within(alice.connect(), "alice's connect");
out.transport = alice.transport;
out.wsTriesAtFirst = wsTries;
out.changes = changes;

const bob = new Partyline({ url: base + "/ws", username: "bob", rooms: ["lobby"], transports: ["sse"], WebSocket: RefusedSocket });
await within(bob.connect(), "bob's connect");
out.wsTriesAfterBob = wsTries;

// Sent together, posted one at a time: the server stores them in order.
const acks = await within(Promise.all(["one", "two", "three"].map((text) => alice.send("lobby", text))), "alice's sends");
out.ackSeqs = acks.map((a) => a.seq);

// Too large for the server, as its welcome said: refused alone, and the
// stream goes on.
out.tooLarge = await alice.send("lobby", "x".repeat(5000)).then(() => "sent", (err) => err.code);

// The network drops alice's stream; bob speaks while she is away.
const down = new Promise((resolve) => alice.on("state", (s) => s.state === "reconnecting" && resolve()));
cuts.at(-1).abort();
await within(down, "alice to notice the cut");
await within(bob.send("lobby", "four"), "bob's send");
await within(alice.connect(), "alice's reconnect");
const caughtUp = new Promise((resolve) => {
  const check = () => alice.lastSeq("lobby") >= 4 && resolve();
  alice.on("message", check);
  check();
});
await within(caughtUp, "alice to catch up");
out.wsTriesAtEnd = wsTries;
out.transportAtEnd = alice.transport;
out.seen = seen;
alice.close();
bob.close();
console.log(JSON.stringify(out));
process.exit(0);
`

// TestClientFallsBackToSSE: against a server that serves only SSE, a
// client whose WebSocket is refused moves to SSE at once, chats over it in
// order, has an oversized frame refused without losing the stream, and
// after losing the stream tries WebSocket again, then resumes over SSE
// with nothing lost or repeated.
func TestClientFallsBackToSSE(t *testing.T) {
	base := serveHub(t, partyline.Options{Transports: []string{partyline.TransportSSE}, MaxMessageSize: 4096})
	var got struct {
		Transport       string
		WSTriesAtFirst  int
		Changes         []struct{ Transport, Previous any }
		WSTriesAfterBob int
		AckSeqs         []int
		TooLarge        string
		WSTriesAtEnd    int
		TransportAtEnd  string
		Seen            []string
	}
	out := runNode(t, fallbackScript, &got, base)
	t.Logf("node: %s", out)
	if got.Transport != "sse" || got.WSTriesAtFirst != 2 {
		t.Errorf("alice connected over %q after %d WebSocket tries, want sse after 2 (one, and its recheck)", got.Transport, got.WSTriesAtFirst)
	}
	if len(got.Changes) != 1 || got.Changes[0].Transport != "sse" || got.Changes[0].Previous != nil {
		t.Errorf("alice's transport events %+v, want one, to sse from null", got.Changes)
	}
	if got.WSTriesAfterBob != got.WSTriesAtFirst {
		t.Errorf("bob, limited to SSE, tried WebSocket %d times", got.WSTriesAfterBob-got.WSTriesAtFirst)
	}
	if !slices.Equal(got.AckSeqs, []int{1, 2, 3}) {
		t.Errorf("three sends made together were stored as seqs %v, want [1 2 3]", got.AckSeqs)
	}
	if got.TooLarge != "too_large" {
		t.Errorf("a frame larger than the server takes ended as %q, want too_large", got.TooLarge)
	}
	if got.WSTriesAtEnd != got.WSTriesAtFirst+2 || got.TransportAtEnd != "sse" {
		t.Errorf("after the stream was cut alice tried WebSocket %d more times and ended on %q; want 2 more (transportRetry 0), then sse",
			got.WSTriesAtEnd-got.WSTriesAtFirst, got.TransportAtEnd)
	}
	if want := []string{"1 one", "2 two", "3 three", "4 four"}; !slices.Equal(got.Seen, want) {
		t.Errorf("alice's messages %q, want %q", got.Seen, want)
	}
}

// recheckScript connects over a fake WebSocket whose first handshake fails,
// as when the server is down, and whose later ones open and are welcomed;
// with the argument "blocked" every handshake fails, as behind a proxy that
// refuses upgrades. The probe's plain GET is always answered with the
// server's 400, and the fake event stream welcomes. It prints the
// transport the client connected over, its WebSocket handshakes and probes,
// and the states it went through.
const recheckScript = `
import { Partyline } from %q;
const everyHandshakeFails = process.argv[2] === "blocked";
let wsTries = 0;
let probes = 0;
const welcome = { type: "welcome", username: "alice", session: "alice~0123456789abcdef0123456789abcdef", rooms: [] };
class Socket {
  constructor() {
    const fails = ++wsTries === 1 || everyHandshakeFails;
    setTimeout(() => {
      if (fails) return this.onclose?.({ code: 1006, reason: "" });
      this.onopen?.();
      this.onmessage?.({ data: JSON.stringify(welcome) });
    }, 0);
  }
  send() {}
  close() {}
}
const fakeFetch = async (url) => {
  if (new URL(url).pathname === "/ws") {
    probes++;
    return Response.json({ error: { code: "bad_request", message: "no \"websocket\" in the Upgrade header" } }, { status: 400 });
  }
  const stream = new ReadableStream({
    start(c) { c.enqueue(new TextEncoder().encode("data: " + JSON.stringify(welcome) + "\n\n")); },
  });
  return new Response(stream, { headers: { "Content-Type": "text/event-stream" } });
};
const pl = new Partyline({ url: "ws://example.invalid/ws", username: "alice", heartbeat: 0, sseHeartbeat: 0, WebSocket: Socket, fetch: fakeFetch });
const states = [];
pl.on("state", (s) => states.push(s.state));
const timedOut = new Promise((_, reject) => setTimeout(() => reject(new Error("timed out: connect")), 10000));
await Promise.race([pl.connect(), timedOut]);
console.log(JSON.stringify({ transport: pl.transport, wsTries, probes, states }));
pl.close();
process.exit(0);
`

// TestClientRechecksBeforeFallingBack: a WebSocket handshake that fails
// while the server is down, followed by a probe that finds it up again (a
// restart), does not move the client to SSE: it tries WebSocket once more
// at once and stays on it. Only a second failure in a row, with the server
// answering, moves it to SSE, still without waiting out a backoff.
func TestClientRechecksBeforeFallingBack(t *testing.T) {
	node, script := nodeScript(t, recheckScript)
	for _, tc := range []struct {
		arg             string
		transport       string
		wsTries, probes int
	}{
		{"restart", "websocket", 2, 1},
		{"blocked", "sse", 2, 2},
	} {
		out, err := exec.Command(node, script, tc.arg).CombinedOutput()
		if err != nil {
			t.Fatalf("node %s: %v\n%s", tc.arg, err, out)
		}
		var got struct {
			Transport       string
			WSTries, Probes int
			States          []string
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("node %s: output %q: %v", tc.arg, out, err)
		}
		if got.Transport != tc.transport || got.WSTries != tc.wsTries || got.Probes != tc.probes {
			t.Errorf("%s: connected over %q after %d handshakes and %d probes, want %q after %d and %d",
				tc.arg, got.Transport, got.WSTries, got.Probes, tc.transport, tc.wsTries, tc.probes)
		}
		if slices.Contains(got.States, "reconnecting") {
			t.Errorf("%s: the client went through the states %q; a recheck or a switch should not wait out a backoff", tc.arg, got.States)
		}
	}
}

// heartbeatScript connects over a fake event stream that sends the welcome,
// then, when the first argument is "comments", a ": ping" comment every
// 50 ms, and else nothing. It prints the client frames POSTed, and the close
// code of the first reconnect, or null if there was none within 1.5 s.
const heartbeatScript = `
import { connect } from %q;
const comments = process.argv[2] === "comments";
const welcome = { type: "welcome", username: "alice", session: "alice~0123456789abcdef0123456789abcdef", rooms: [] };
const posted = [];
const fakeFetch = async (url, init) => {
  if (init?.method === "POST") {
    posted.push(JSON.parse(init.body).type);
    return new Response(null, { status: 202 }); // and no pong ever comes
  }
  const enc = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(enc.encode("data: " + JSON.stringify(welcome) + "\n\n"));
      if (comments) setInterval(() => controller.enqueue(enc.encode(": ping\n\n")), 50);
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
};
const pl = connect({ url: "http://example.invalid/ws", username: "alice", transports: ["sse"], fetch: fakeFetch, sseHeartbeat: 300 });
const done = (closeCode) => {
  console.log(JSON.stringify({ posted, closeCode }));
  process.exit(0);
};
pl.on("state", (s) => { if (s.state === "reconnecting") done(s.code); });
setTimeout(() => done(null), 1500);
`

// TestClientSSEHeartbeat: over SSE the server's ": ping" comments keep a
// stream alive with no ping from the client; a stream silent for
// sseHeartbeat (300 ms here) gets a ping POSTed, and one that does not
// answer it is abandoned (4000) and reconnected.
func TestClientSSEHeartbeat(t *testing.T) {
	node, script := nodeScript(t, heartbeatScript)
	for _, tc := range []struct {
		mode      string
		posted    []string
		closeCode any
	}{
		{"silent", []string{"ping"}, 4000.0},
		{"comments", nil, nil},
	} {
		out, err := exec.Command(node, script, tc.mode).CombinedOutput()
		if err != nil {
			t.Fatalf("node, %s stream: %v\n%s", tc.mode, err, out)
		}
		var got struct {
			Posted    []string
			CloseCode any
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("node, %s stream: output %q: %v", tc.mode, out, err)
		}
		if !slices.Equal(got.Posted, tc.posted) || got.CloseCode != tc.closeCode {
			t.Errorf("%s stream: the client posted %q and reconnected with code %v; want %q and %v", tc.mode, got.Posted, got.CloseCode, tc.posted, tc.closeCode)
		}
	}
}

// serveHub serves a hub made with opts on loopback, as the binary does,
// stopped when t ends, and returns its http:// URL.
func serveHub(t *testing.T, opts partyline.Options) string {
	t.Helper()
	hub, err := partyline.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, pattern := range []string{"GET /ws", "GET /ws/{room}", "GET /sse", "GET /sse/{room}", "POST /sse/{session}"} {
		mux.Handle(pattern, hub)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		srv.Close()
	})
	return srv.URL
}

// urlRoomScript runs alice, whose URL names her room, against a real
// server. Her stream is cut, and she is held back from reconnecting while
// bob posts three messages; then she resumes. It prints the seqs of her
// message events and the resumed flags of her joined events.
const urlRoomScript = realServerPrelude + `
const until = (client, room, seq, what) => within(new Promise((resolve) => {
  const check = () => client.lastSeq(room) >= seq && resolve();
  client.on("message", check);
  check();
}), what);

const alice = new Partyline({ url: base + "/ws/general", username: "alice", transports: ["sse"], fetch: cuttable });
const seen = [];
const joins = [];
alice.on("message", (m) => seen.push(m.seq));
alice.on("joined", (j) => joins.push(j.resumed));
await within(alice.connect(), "alice's connect");
const bob = new Partyline({ url: base + "/ws", username: "bob", rooms: ["general"], transports: ["sse"] });
await within(bob.connect(), "bob's connect");
for (const text of ["one", "two", "three"]) await within(bob.send("general", text), "bob's send");
await until(alice, "general", 3, "alice to read three");

let open;
held = new Promise((resolve) => { open = resolve; });
const down = new Promise((resolve) => alice.on("state", (s) => s.state === "reconnecting" && resolve()));
cuts.at(-1).abort();
await within(down, "alice to notice the cut");
for (const text of ["four", "five", "six"]) await within(bob.send("general", text), "bob's send");
open();
await within(alice.connect(), "alice's reconnect");
await until(alice, "general", 6, "alice to catch up");
await new Promise((resolve) => setTimeout(resolve, 200)); // anything more would come now
alice.close();
bob.close();
console.log(JSON.stringify({ seen, joins }));
process.exit(0);
`

// TestClientResumesTheURLRoom: a client whose URL names its room resumes
// it with nothing lost after a reconnect, although the server joins that
// room by itself, from its latest seq, before the client's join with since
// is answered.
func TestClientResumesTheURLRoom(t *testing.T) {
	base := serveHub(t, partyline.Options{})
	var got struct {
		Seen  []int
		Joins []bool
	}
	runNode(t, urlRoomScript, &got, base)
	if want := []int{1, 2, 3, 4, 5, 6}; !slices.Equal(got.Seen, want) {
		t.Errorf("alice's messages %v, want %v", got.Seen, want)
	}
	if want := []bool{false, true}; !slices.Equal(got.Joins, want) {
		t.Errorf("alice's joined events, resumed: %v, want %v", got.Joins, want)
	}
}

// tooBigScript connects over a fake WebSocket that welcomes without
// saying how large a message the server takes, as earlier servers did,
// joins and acks, and closes with 1009 when a chat over 1,000 bytes
// arrives. The client sends a large chat, then a small one, then the
// large one again. It prints how each ended and how many sockets opened.
const tooBigScript = `
import { Partyline } from %q;
let sockets = 0;
let seq = 0;
const welcome = { type: "welcome", username: "alice", session: "1", rooms: [] };
class Socket {
  constructor() {
    sockets++;
    setTimeout(() => { this.onopen?.(); this.reply(welcome); }, 0);
  }
  reply(f) { setTimeout(() => this.onmessage?.({ data: JSON.stringify(f) }), 0); }
  send(data) {
    if (this.closing) return; // a server reads nothing after what it closed for
    const f = JSON.parse(data);
    if (f.type === "join") this.reply({ type: "joined", room: f.room, seq, ...(f.since !== undefined && { recovered: true }) });
    if (f.type !== "chat") return;
    if (f.content.length > 1000) {
      this.closing = true;
      setTimeout(() => this.onclose?.({ code: 1009, reason: "message too big" }), 0);
      return;
    }
    seq++;
    this.reply({ type: "chat", room: f.room, username: "alice", content: f.content, seq });
    this.reply({ type: "ack", id: f.id, seq });
  }
  close() {}
}
const alice = new Partyline({ url: "ws://example.invalid/ws", username: "alice", rooms: ["lobby"], heartbeat: 0, minDelay: 10, WebSocket: Socket });
await alice.connect();
const ended = (p) => p.then((ack) => "acked " + ack.seq, (err) => err.code);
const [big, small] = await Promise.all([ended(alice.send("lobby", "x".repeat(2000))), ended(alice.send("lobby", "small"))]);
const again = await ended(alice.send("lobby", "y".repeat(2000)));
console.log(JSON.stringify({ big, small, again, sockets }));
alice.close();
process.exit(0);
`

// TestClientRefusesWhatClosedWith1009: a chat that made the server close
// with 1009 fails with too_large instead of being sent again after the
// reconnect, which would close the connection again and again; the chat
// sent after it goes through, and one as large is refused without a try.
func TestClientRefusesWhatClosedWith1009(t *testing.T) {
	var got struct {
		Big, Small, Again string
		Sockets           int
	}
	runNode(t, tooBigScript, &got)
	if got.Big != "too_large" || got.Small != "acked 1" || got.Again != "too_large" || got.Sockets != 2 {
		t.Errorf("large chat %q, small one %q, large again %q, over %d sockets; want too_large, acked 1, too_large, over 2",
			got.Big, got.Small, got.Again, got.Sockets)
	}
}

// twiceJoinedScript connects, with lobby in its rooms, over a fake
// WebSocket whose server joins lobby by itself after welcome, as for a
// room in the URL, and answers the client's own join too. It prints how
// many joined events the client emitted.
const twiceJoinedScript = `
import { Partyline } from %q;
class Socket {
  constructor() {
    setTimeout(() => { this.onopen?.(); this.reply({ type: "welcome", username: "alice", session: "1", rooms: ["lobby"] }); this.reply({ type: "joined", room: "lobby", seq: 3 }); }, 0);
  }
  reply(f) { setTimeout(() => this.onmessage?.({ data: JSON.stringify(f) }), 0); }
  send(data) {
    const f = JSON.parse(data);
    if (f.type === "join") this.reply({ type: "joined", room: f.room, seq: 3 });
  }
  close() {}
}
const alice = new Partyline({ url: "ws://example.invalid/ws/lobby", username: "alice", rooms: ["lobby"], heartbeat: 0, WebSocket: Socket });
let joined = 0;
alice.on("joined", () => joined++);
await alice.connect();
await new Promise((resolve) => setTimeout(resolve, 100));
console.log(JSON.stringify({ joined }));
alice.close();
process.exit(0);
`

// TestClientJoinedOnce: a room the server joins by itself (the URL's) and
// the client joins too is announced to the app once.
func TestClientJoinedOnce(t *testing.T) {
	var got struct{ Joined int }
	if out := runNode(t, twiceJoinedScript, &got); got.Joined != 1 {
		t.Fatalf("joined events %s, want one", out)
	}
}

// epochScript connects over a fake WebSocket to a server whose history
// ends with its process: the first connection's welcome names epoch "a",
// and room lobby is at seq 5; the connection is lost, and the next welcome
// names epoch "b", the room being at seq 1 again. It prints the joins the
// client sent, its joined events, and the seqs of its message events.
const epochScript = `
import { Partyline } from %q;
let sockets = 0;
const joins = [];
class Socket {
  constructor() {
    this.n = ++sockets;
    setTimeout(() => { this.onopen?.(); this.reply({ type: "welcome", username: "alice", session: "1", rooms: [], epoch: this.n === 1 ? "a" : "b" }); }, 0);
  }
  reply(f) { setTimeout(() => this.onmessage?.({ data: JSON.stringify(f) }), 0); }
  send(data) {
    const f = JSON.parse(data);
    if (f.type !== "join") return;
    joins.push(f.since ?? null);
    const seq = this.n === 1 ? 4 : 0;
    this.reply({ type: "joined", room: f.room, seq, ...(f.since !== undefined && { recovered: true }) });
    this.reply({ type: "chat", room: f.room, username: "bob", content: "hi", seq: this.n === 1 ? 5 : 1 });
    if (this.n === 1) setTimeout(() => this.onclose?.({ code: 1006, reason: "" }), 20);
  }
  close() {}
}
const alice = new Partyline({ url: "ws://example.invalid/ws", username: "alice", rooms: ["lobby"], heartbeat: 0, minDelay: 10, WebSocket: Socket });
const joined = [];
const seqs = [];
alice.on("joined", (j) => joined.push({ seq: j.seq, resumed: j.resumed, reset: j.reset }));
alice.on("message", (m) => seqs.push(m.seq));
await alice.connect();
const deadline = Date.now() + 5000; // then print what came
await new Promise((resolve) => { const check = () => ((sockets === 2 && seqs.length === 2) || Date.now() > deadline ? resolve() : setTimeout(check, 10)); check(); });
console.log(JSON.stringify({ joins, joined, seqs }));
alice.close();
process.exit(0);
`

// TestClientSeesTheHistoryStartOver: when the welcome names another epoch
// than before (a server with a memory store restarted), the client joins
// its rooms afresh, without since, tells the app reset, and takes the new
// seqs, which a resume would have dropped as seen.
func TestClientSeesTheHistoryStartOver(t *testing.T) {
	var got struct {
		Joins  []*int
		Joined []struct {
			Seq            int
			Resumed, Reset bool
		}
		Seqs []int
	}
	out := runNode(t, epochScript, &got)
	if len(got.Joins) != 2 || got.Joins[0] != nil || got.Joins[1] != nil {
		t.Errorf("joins sent with since %s, want none either time", out)
	}
	if len(got.Joined) != 2 || got.Joined[1].Reset != true || got.Joined[1].Resumed || got.Joined[0].Reset {
		t.Errorf("joined events %+v, want the second reset, not resumed", got.Joined)
	}
	if !slices.Equal(got.Seqs, []int{5, 1}) {
		t.Errorf("messages %v, want [5 1]: seq 1 of the new history", got.Seqs)
	}
}
