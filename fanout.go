package partyline

import (
	"runtime"
	"sync"
)

// parallelFanout is the room size from which one delivery is split across
// the CPUs: below it, starting goroutines costs more than it saves.
const parallelFanout = 256

// member is one entry of a room's subscriber list.
type member struct {
	conn *Conn
	sub  *subscription
}

// membersLocked returns the room's subscribers as a slice, rebuilt only
// after the membership changed. r.mu must be held.
func (r *room) membersLocked() []member {
	if r.members == nil {
		r.members = make([]member, 0, len(r.subs))
		for c, sub := range r.subs {
			r.members = append(r.members, member{c, sub})
		}
	}
	return r.members
}

// fanOut calls send for every member and returns how many it sent to. A
// large room is split in one chunk per CPU, the calling goroutine taking
// the first; it returns when all are done, so deliveries stay in order.
// send may read members' subscriptions: the caller holds r.mu throughout.
func fanOut(members []member, send func(member) bool) int {
	chunks := min(runtime.GOMAXPROCS(0), len(members)/(parallelFanout/2))
	if len(members) < parallelFanout || chunks < 2 {
		return sendAll(members, send)
	}
	size := (len(members) + chunks - 1) / chunks
	chunks = (len(members) + size - 1) / size // no chunk starts past the end
	counts := make([]int, chunks)
	var wg sync.WaitGroup
	for i := 1; i < chunks; i++ {
		part := members[i*size : min((i+1)*size, len(members))]
		wg.Go(func() { counts[i] = sendAll(part, send) })
	}
	counts[0] = sendAll(members[:size], send)
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	return total
}

func sendAll(members []member, send func(member) bool) int {
	n := 0
	for _, m := range members {
		if send(m) {
			n++
		}
	}
	return n
}
