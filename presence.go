package partyline

import "context"

// Presence tracks which users are online in which rooms across the cluster.
// The hub counts a user's connections on its own node and calls Add when the
// first of them enters a room and Remove when the last leaves, so a Presence
// sees each (node, room, user) at most once.
//
// The room name "" stands for the whole server: every connected user is in
// it, which is how direct messages learn whether their recipient is online.
//
// Implementations must be safe for concurrent use, and return errors wrapping
// ErrUnavailable when their backing service cannot answer.
type Presence interface {
	// Add records user in room for this node. first reports that no node had
	// the user in the room before.
	Add(ctx context.Context, room, user string) (first bool, err error)
	// Remove forgets user in room for this node. last reports that no node
	// has the user in the room any more.
	Remove(ctx context.Context, room, user string) (last bool, err error)
	// Users returns the room's online users, sorted and unique, never nil.
	Users(ctx context.Context, room string) ([]string, error)
	// Contains reports whether user is online in room on any node.
	Contains(ctx context.Context, room, user string) (bool, error)
}

// OrderedPresence is implemented by a Presence shared between nodes that
// numbers its decisions in one order across the cluster. Two nodes announce
// what they decide over the Broker, which may reorder: when a user's last
// connection on one node leaves as their first on another arrives, a third
// node could get user_joined before user_left. Each announcement carries
// its decision's number, and a node drops one older than the latest it
// delivered for the same user and room. The Server calls these instead of
// Add and Remove, so a type that wraps an OrderedPresence and changes Add
// or Remove must change these too.
type OrderedPresence interface {
	// AddOrdered is Add that also returns, when first, the decision's
	// number: greater than that of every decision before it in the cluster.
	AddOrdered(ctx context.Context, room, user string) (first bool, number uint64, err error)
	// RemoveOrdered is Remove that also returns, when last, the decision's
	// number.
	RemoveOrdered(ctx context.Context, room, user string) (last bool, number uint64, err error)
}

// PresenceRestorer is implemented by a Presence shared between nodes that
// puts a node's users back after the others had dropped them (the node was
// cut off for longer than the presence TTL). The hub calls StartRestore once;
// the Presence then calls restored for every (room, user) that thereby came
// back online cluster-wide, so the hub can announce user_joined again.
type PresenceRestorer interface {
	StartRestore(restored func(room, user string))
}

// RoomLister is implemented by a Presence shared between nodes that can list
// every room with an online user in the cluster, sorted, for the HTTP API.
type RoomLister interface {
	Rooms(ctx context.Context) ([]string, error)
}

// Counter is implemented by a Presence that can count a room's online users
// without listing them, cheap however large the room: for GET
// /api/rooms/{room}, and to tell a large room (Options.PresenceListMax)
// from a small one on joins and leaves, so that a large room is never
// listed for them. The Server falls back to the length of Users without it.
type Counter interface {
	// Count returns how many distinct users are online in room on any node:
	// the length Users would return, 0 for a room with nobody.
	Count(ctx context.Context, room string) (int, error)
}

// PresenceExpirer is implemented by a Presence shared between nodes, which
// must forget the users of a node that died without a word. Start is called
// once by the hub; the Presence then calls expired for every (room, user)
// that it dropped because its node stopped refreshing it, so the hub can
// announce user_left.
type PresenceExpirer interface {
	StartExpiry(expired func(room, user string))
}
