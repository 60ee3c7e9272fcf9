package web

import (
	"slices"
	"testing"

	"github.com/partyline/partyline"
)

// largeRoomScript runs four clients of partyline.js (over SSE: Node 20 has
// no WebSocket) in one room of a server whose PresenceListMax is 2. It
// prints, as JSON, what alice (who holds the whole list) and carol (who
// joins the room when it is already large) make of each step.
const largeRoomScript = `
import { Partyline } from %q;
const base = process.argv[2];
const room = "big";
const within = (p, what) => Promise.race([p, new Promise((_, reject) =>
  setTimeout(() => reject(new Error("timed out: " + what)), 20000))]);

const sent = {}; // name → types of the frames it POSTed
const open = async (name) => {
  sent[name] = [];
  const fetchLogged = (url, init) => {
    if (init?.method === "POST") sent[name].push(JSON.parse(init.body).type);
    return fetch(url, init);
  };
  const pl = new Partyline({ url: base + "/ws", username: name, rooms: [room], transports: ["sse"], fetch: fetchLogged });
  await within(pl.connect(), name + "'s connect");
  return pl;
};
const view = (pl) => ({ users: pl.users(room), count: pl.count(room), partial: pl.partial(room) });
// until resolves with pl's view of the room once pred holds of it.
const until = (pl, pred, what) => within(new Promise((resolve) => {
  if (pred(view(pl))) return resolve(view(pl));
  const off = pl.on("presence", (d) => {
    if (d.room !== room || !pred(view(pl))) return;
    off();
    resolve(view(pl));
  });
}), what);
const leave = async (pl) => { await pl.leave(room); pl.close(); };

const out = {};
const alice = await open("alice");
const bob = await open("bob");
out.alice2 = await until(alice, (v) => v.users.length === 2, "alice to see bob");

const carol = await open("carol"); // the third: the room is large
const diffs = [];
carol.on("presence_diff", (f) => diffs.push(f.count));
const changes = [];
carol.on("presence", (d) => d.change && changes.push(d.change.type));
out.carol3 = await until(carol, (v) => v.count === 3, "carol's count of 3");
out.alice3 = await until(alice, (v) => v.count === 3, "alice's count of 3");

const dave = await open("dave");
out.carol4 = await until(carol, (v) => v.count === 4, "carol's count of 4");
out.alice4 = await until(alice, (v) => v.count === 4, "alice's count of 4");

await leave(dave);
out.carolDaveLeft = await until(carol, (v) => v.count === 3, "carol's count after dave left");
out.aliceDaveLeft = await until(alice, (v) => v.count === 3, "alice's count after dave left");
await leave(bob);
out.carolBobLeft = await until(carol, (v) => v.count === 2, "carol's count after bob left");

// The server sends a large room's changes in presence_diff until its
// batching has seen a second without changes (appendix "Large rooms"),
// so only after that is a change named: wait for a quiet 1.5 s.
await within(new Promise((resolve) => {
  let timer = setTimeout(done, 1500);
  const off = carol.on("presence_diff", () => { clearTimeout(timer); timer = setTimeout(done, 1500); });
  function done() { off(); resolve(); }
}), "a quiet second");
await leave(alice);
out.carolAliceLeft = await until(carol, (v) => v.count === 1 && !v.partial, "carol's whole list after alice left");
out.carolDiffs = diffs;
out.carolChanges = changes;
out.carolSent = sent.carol;
carol.close();
console.log(JSON.stringify(out));
process.exit(0);
`

// roomView is a client's picture of a room: users(room), count(room),
// partial(room).
type roomView struct {
	Users   []string
	Count   int
	Partial bool
}

// TestClientLargeRoom: partyline.js keeps a large room's count from
// online_users and presence_diff; a client that joined the room while it
// was large knows its list is partial, one that held the whole list keeps
// it whole by applying the diffs, and once the room is small again and a
// change is named, the partial client asks presence and has the whole list.
func TestClientLargeRoom(t *testing.T) {
	base := serveHub(t, partyline.Options{PresenceListMax: 2})
	var got struct {
		Alice2, Carol3, Alice3, Carol4, Alice4     roomView
		CarolDaveLeft, AliceDaveLeft, CarolBobLeft roomView
		CarolAliceLeft                             roomView
		CarolDiffs                                 []int
		CarolChanges, CarolSent                    []string
	}
	t.Logf("node: %s", runNode(t, largeRoomScript, &got, base))
	whole := func(what string, v roomView, users ...string) {
		t.Helper()
		if !slices.Equal(v.Users, users) || v.Count != len(users) || v.Partial {
			t.Errorf("%s: users %q, count %d, partial %v; want %q, count %d, whole", what, v.Users, v.Count, v.Partial, users, len(users))
		}
	}
	partial := func(what string, v roomView, count int) {
		t.Helper()
		if !v.Partial || v.Count != count || len(v.Users) >= count {
			t.Errorf("%s: users %q, count %d, partial %v; want fewer than %d users, count %d, partial", what, v.Users, v.Count, v.Partial, count, count)
		}
	}
	whole("alice with bob, a small room", got.Alice2, "alice", "bob")
	partial("carol, joining the room as its third", got.Carol3, 3)
	whole("alice after carol's presence_diff", got.Alice3, "alice", "bob", "carol")
	partial("carol after dave came", got.Carol4, 4)
	whole("alice after dave came", got.Alice4, "alice", "bob", "carol", "dave")
	partial("carol after dave left", got.CarolDaveLeft, 3)
	whole("alice after dave left", got.AliceDaveLeft, "alice", "bob", "carol")
	if got.CarolBobLeft.Count != 2 {
		t.Errorf("carol after bob left: count %d, want 2", got.CarolBobLeft.Count)
	}
	whole("carol after alice left a small room", got.CarolAliceLeft, "carol")
	if len(got.CarolDiffs) < 2 || !slices.Contains(got.CarolDiffs, 4) {
		t.Errorf("carol's presence_diff events had counts %v, want at least two, one of 4", got.CarolDiffs)
	}
	if !slices.Contains(got.CarolChanges, "user_left") {
		t.Errorf("carol's presence changes %q: want a user_left once the room was small", got.CarolChanges)
	}
	if !slices.Contains(got.CarolSent, "presence") {
		t.Errorf("carol sent %q: want a presence request to fill her partial list", got.CarolSent)
	}
}
