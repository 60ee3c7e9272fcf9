package partyline_test

import (
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
)

func TestTwoClientsChatInARoom(t *testing.T) {
	ts := startServer(t, partyline.Options{})
	alice := ts.dial(t, "/ws?username=alice&room=lobby")
	alice.Expect("joined")
	if got := alice.Expect("online_users").Strings("users"); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("alice's online_users = %v, want [alice]", got)
	}
	bob := ts.dial(t, "/ws?username=bob&room=lobby")
	bob.Expect("joined")
	if got := bob.Expect("online_users").Strings("users"); len(got) != 2 {
		t.Fatalf("bob's online_users = %v, want [alice bob]", got)
	}
	if f := alice.Expect("user_joined"); f.Str("username") != "bob" || f.Str("content") != "bob joined the room" {
		t.Fatalf("alice got %v, want user_joined bob", f)
	}
	bob.Send(map[string]any{"type": "chat", "room": "lobby", "content": "hi alice", "id": "m1"})
	for _, c := range []*wstest.Client{alice, bob} {
		f := c.WaitFor("chat")
		if f.Str("content") != "hi alice" || f.Str("username") != "bob" || f.Num("seq") != 1 {
			t.Fatalf("chat frame = %v, want bob's hi alice with seq 1", f)
		}
	}
	if ack := bob.WaitFor("ack"); ack.Str("id") != "m1" || ack.Num("seq") != 1 {
		t.Fatalf("ack = %v, want id m1 seq 1", ack)
	}
}
