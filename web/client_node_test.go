package web

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// retryScript drives partyline.js in Node with a fake WebSocket that opens
// and is closed at once with the given code and reason, and prints the
// reconnect delay the client chose. It also prints what retryAfter parses.
const retryScript = `
import { connect, retryAfter } from %q;
const [code, reason] = [Number(process.argv[2]), process.argv[3]];
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
const pl = connect({ url: "ws://example.invalid/ws", username: "alice", WebSocket: FakeSocket, heartbeat: 0 });
pl.on("state", (s) => {
  if (s.state !== "reconnecting" || s.delay === undefined) return;
  console.log(JSON.stringify({ delay: s.delay, parsed: retryAfter(reason) }));
  pl.close();
  process.exit(0);
});
`

// TestClientWaitsAsTheServerAsks checks that partyline.js reconnects no
// sooner than a 4009 close reason's "retry after", and keeps its own backoff
// when a reason asks nothing.
func TestClientWaitsAsTheServerAsks(t *testing.T) {
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
	script := filepath.Join(t.TempDir(), "retry.mjs")
	if err := os.WriteFile(script, fmt.Appendf(nil, retryScript, lib), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code         int
		reason       string
		parsed       any
		minMS, maxMS float64
	}{
		{4009, "slow consumer; retry after 1500ms", 1500.0, 1500, 1500},
		{4009, "slow consumer; retry after 120000ms", 120000.0, 30000, 30000}, // capped at maxDelay
		{4009, "slow consumer", nil, 250, 500},                                // minDelay 500, equal jitter
		{1006, "", nil, 250, 500},
	} {
		out, err := exec.Command(node, script, fmt.Sprint(tc.code), tc.reason).CombinedOutput()
		if err != nil {
			t.Fatalf("node, close %d %q: %v\n%s", tc.code, tc.reason, err, out)
		}
		var got struct {
			Delay  float64
			Parsed any
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("node, close %d %q: output %q: %v", tc.code, tc.reason, out, err)
		}
		if got.Parsed != tc.parsed || got.Delay < tc.minMS || got.Delay > tc.maxMS {
			t.Errorf("close %d %q: retryAfter %v, reconnect in %v ms; want %v and %v–%v ms",
				tc.code, tc.reason, got.Parsed, got.Delay, tc.parsed, tc.minMS, tc.maxMS)
		}
	}
}
