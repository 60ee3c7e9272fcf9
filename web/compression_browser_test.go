package web_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/partyline/partyline"
)

// TestBrowserNegotiatesCompression: with compression on, Chromium offers
// permessage-deflate and the server takes it; a message long enough to be
// compressed reaches another page intact, and so does a short one.
func TestBrowserNegotiatesCompression(t *testing.T) {
	browser := newBrowser(t)
	srv := startServerWith(t, "127.0.0.1:0", partyline.NewMemoryStore(0), serverOptions{compression: true})
	alice := openPage(t, browser, srv.url(), "alice")
	bob := openPage(t, browser, srv.url(), "bob")
	alice.login("alice", "lobby")
	bob.login("bob", "lobby")
	alice.waitUsers("alice", "bob")
	for _, p := range []*browserPage{alice, bob} {
		p.waitTransport("websocket")
		p.mu.Lock()
		extensions := slices.Clone(p.extensions)
		p.mu.Unlock()
		if len(extensions) == 0 || !strings.HasPrefix(extensions[0], "permessage-deflate") {
			t.Fatalf("%s's handshake answered extensions %q, want permessage-deflate", p.name, extensions)
		}
	}
	long := strings.TrimSpace(strings.Repeat("a long message compresses well. ", 40))
	alice.send(long)
	alice.send("short")
	checkMessages(t, "bob's page", bob.waitMessages("lobby", 2), []shown{
		{Seq: 1, User: "alice", Text: long},
		{Seq: 2, User: "alice", Text: "short"},
	})
}
