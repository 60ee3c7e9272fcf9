package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// The joins scenario is a join storm: --connections distinct users (or
// --users of them) join one room at once, as fast as the dials go, and
// nobody publishes. It measures what presence costs: the time until every
// connection has its joined, the presence frames every member received
// (online_users, user_joined, user_left, presence_diff), by type, in
// objects and bytes, until none has arrived for --drain, and the server's
// CPU over all of it. Under the presence of docs/protocol.md §5.5 alone,
// N users cost N² user_joined and N online_users of up to N names each.

// presenceTypes are the frame types the joins scenario counts; any other
// text object counts as "other".
var presenceTypes = [...]string{"online_users", "user_joined", "user_left", "presence_diff"}

// typeCounter counts the objects of one type and their bytes.
type typeCounter struct {
	objects, bytes atomic.Uint64
	_              [48]byte // alone on its cache line
}

// FrameCount is how many objects of one type arrived, and their bytes.
type FrameCount struct {
	Objects uint64 `json:"objects"`
	Bytes   uint64 `json:"bytes"`
}

// JoinsResult is what the joins scenario measured.
type JoinsResult struct {
	// JoinedSeconds runs from the first dial until the last connection had
	// its joined; QuietSeconds until the last presence object arrived, or
	// as long as JoinedSeconds when that came earlier.
	JoinedSeconds float64 `json:"joined_s"`
	QuietSeconds  float64 `json:"quiet_s"`
	// Quiet is false when the run ended (--timeout) with presence frames
	// still arriving.
	Quiet bool `json:"quiet"`
	// Frames counts the objects received by type: those of presenceTypes
	// and "other".
	Frames map[string]FrameCount `json:"frames"`
	// PresenceObjects and PresenceBytes add up the presence types.
	PresenceObjects uint64 `json:"presence_objects"`
	PresenceBytes   uint64 `json:"presence_bytes"`
}

var typePrefix = []byte(`{"type":"`)

// countTypes counts the objects of msg, one per line, by type.
func (r *run) countTypes(msg []byte, now int64) {
	presence := false
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		kind := len(presenceTypes) // other
		if rest, ok := bytes.CutPrefix(line, typePrefix); ok {
			if end := bytes.IndexByte(rest, '"'); end >= 0 {
				for i, t := range presenceTypes {
					if string(rest[:end]) == t {
						kind, presence = i, true
						break
					}
				}
			}
		}
		r.types[kind].objects.Add(1)
		r.types[kind].bytes.Add(uint64(len(line)))
	}
	if presence {
		r.lastPresence.Store(now)
	}
}

// executeJoins finishes a joins run once the connections are dialed and
// joined (or the wait for it gave up): it waits until presence frames
// stop, and fills res. The window is the whole run from the first dial.
func (r *run) executeJoins(ctx context.Context, res *Result, clients []*client, before procSample, selfBefore int64, selfStart time.Duration, dialStart time.Time) (*Result, error) {
	r.setPhase("settle")
	quiet := r.settle(ctx)
	w := window{server: [2]procSample{before}, self: [2]time.Duration{selfStart, selfCPU()}}
	w.wall = time.Since(dialStart)
	if s, err := readProc(os.Getpid()); err == nil {
		w.selfRSS = s.RSS
	}
	var err error
	if w.server[1], err = r.sampleServer(); err != nil {
		return nil, err
	}
	r.fill(res, clients, before, w, selfBefore)
	j := &JoinsResult{Quiet: quiet, Frames: map[string]FrameCount{}}
	start := dialStart.Sub(r.epoch)
	j.JoinedSeconds = (time.Duration(r.lastReady.Load()) - start).Seconds()
	j.QuietSeconds = max(j.JoinedSeconds, (time.Duration(r.lastPresence.Load()) - start).Seconds())
	for i := range r.types {
		name := "other"
		if i < len(presenceTypes) {
			name = presenceTypes[i]
		}
		fc := FrameCount{Objects: r.types[i].objects.Load(), Bytes: r.types[i].bytes.Load()}
		j.Frames[name] = fc
		if i < len(presenceTypes) {
			j.PresenceObjects += fc.Objects
			j.PresenceBytes += fc.Bytes
		}
	}
	res.Joins = j
	return res, nil
}

// settle waits until no presence object has arrived for cfg.Drain, and
// reports whether that happened before the run's deadline.
func (r *run) settle(ctx context.Context) bool {
	deadline := time.Now().Add(r.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d.Add(-phaseSlack)
	}
	start := r.now()
	for time.Now().Before(deadline) {
		last := max(r.lastPresence.Load(), start)
		if time.Duration(r.now()-last) >= r.cfg.Drain {
			return true
		}
		if sleep(ctx, 10*time.Millisecond) != nil {
			return false
		}
	}
	return false
}

// writeJoins prints the joins scenario's figures.
func writeJoins(row func(string, string, ...any), res *Result) {
	j := res.Joins
	if j == nil {
		return
	}
	quiet := "quiet"
	if !j.Quiet {
		quiet = "NOT quiet by the deadline"
	}
	row("joined", "all in %.2fs from the first dial; last presence frame at %.2fs (%s)", j.JoinedSeconds, j.QuietSeconds, quiet)
	members := float64(max(res.Connected, 1))
	row("presence", "%d objects, %.1f MB: %.1f objects and %.1f KB per member",
		j.PresenceObjects, mb(int64(j.PresenceBytes)), float64(j.PresenceObjects)/members, float64(j.PresenceBytes)/1024/members)
	for _, name := range append(presenceTypes[:], "other") {
		fc := j.Frames[name]
		row("  "+name, "%d objects, %s", fc.Objects, formatBytes(fc.Bytes))
	}
}

func formatBytes(b uint64) string {
	if b >= 1<<20 {
		return fmt.Sprintf("%.1f MB", mb(int64(b)))
	}
	return fmt.Sprintf("%.1f KB", float64(b)/1024)
}
