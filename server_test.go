package partyline_test

import (
	"testing"

	"github.com/partyline/partyline"
)

func TestTwoClientsChatInARoom(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.expect("joined")
	if got := alice.expect("online_users").strings("users"); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("alice's online_users = %v, want [alice]", got)
	}
	bob := ts.dial(t, "/ws?username=bob&room=lobby")
	bob.expect("joined")
	if got := bob.expect("online_users").strings("users"); len(got) != 2 {
		t.Fatalf("bob's online_users = %v, want [alice bob]", got)
	}
	if f := alice.expect("user_joined"); f.str("username") != "bob" || f.str("content") != "bob joined the room" {
		t.Fatalf("alice got %v, want user_joined bob", f)
	}
	bob.send(map[string]any{"type": "chat", "room": "lobby", "content": "hi alice", "id": "m1"})
	for _, c := range []*client{alice, bob} {
		f := c.waitFor("chat")
		if f.str("content") != "hi alice" || f.str("username") != "bob" || f.num("seq") != 1 {
			t.Fatalf("chat frame = %v, want bob's hi alice with seq 1", f)
		}
	}
	if ack := bob.waitFor("ack"); ack.str("id") != "m1" || ack.num("seq") != 1 {
		t.Fatalf("ack = %v, want id m1 seq 1", ack)
	}
}
