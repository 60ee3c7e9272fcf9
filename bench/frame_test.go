package bench

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/partyline/partyline/internal/ws"
)

// serverFrame encodes an unmasked frame as a server sends it.
func serverFrame(op byte, fin bool, payload []byte) []byte {
	first := op
	if fin {
		first |= ws.FinBit
	}
	return ws.AppendFrame(nil, first, payload, nil)
}

// testStream is a byte stream of server frames and the stamps its text
// frames hold, in order. With big, one frame is larger than a poller's
// buffer.
func testStream(big bool) (stream []byte, stamps []int64) {
	add := func(op byte, payload string) { stream = append(stream, serverFrame(op, true, []byte(payload))...) }
	add(ws.OpText, `{"type":"welcome","username":"b1","session":"s","rooms":[],"server":"x"}`)
	add(ws.OpText, testBatch)
	stamps = append(stamps, testStamps...)
	add(ws.OpPing, "")
	add(ws.OpText, serverChat(stamp(555), 6))
	add(ws.OpPong, "p")
	long := serverChat(stamp(666)+strings.Repeat("y", 300), 7) // 16-bit length
	add(ws.OpText, long)
	stamps = append(stamps, 555, 666)
	if big {
		add(ws.OpText, `{"type":"online_users","users":[`+strings.Repeat(`"u",`, pollerBufferSize/3)+`"u"]}`+"\n"+serverChat(stamp(777), 8))
		stamps = append(stamps, 777)
	}
	add(ws.OpText, serverChat(stamp(888), 9))
	return stream, append(stamps, 888)
}

// parsePieces feeds stream to a parser in the pieces that cuts delimit
// and returns the stamps of its text frames and how many pings it saw.
func parsePieces(t *testing.T, stream []byte, cuts []int) (stamps []int64, pings int) {
	t.Helper()
	stamps, pings, _ = parseMessages(t, frameParser{}, stream, cuts)
	return stamps, pings
}

// parseMessages is parsePieces with parser p, and also returns the text
// messages, as handled.
func parseMessages(t *testing.T, p frameParser, stream []byte, cuts []int) (stamps []int64, pings int, texts []string) {
	t.Helper()
	handle := func(fin bool, op byte, payload []byte) error {
		switch {
		case !fin:
			t.Fatalf("FIN=0 frame")
		case op == ws.OpText:
			texts = append(texts, string(payload))
			forEachStamp(payload, func(s int64) { stamps = append(stamps, s) })
		case op == ws.OpPing:
			pings++
		}
		return nil
	}
	from := 0
	for _, to := range append(cuts, len(stream)) {
		if err := p.feed(stream[from:to], handle); err != nil {
			t.Fatalf("cuts %v: feed: %v", cuts, err)
		}
		from = to
	}
	if p.partial != nil {
		t.Fatalf("cuts %v: %d bytes left over", cuts, len(p.partial))
	}
	return stamps, pings, texts
}

func TestParserFindsEveryStampOnce(t *testing.T) {
	stream, want := testStream(false)
	// Cut at every byte boundary, then in two places at once.
	for cut := range len(stream) + 1 {
		if got, pings := parsePieces(t, stream, []int{cut}); !slices.Equal(got, want) || pings != 1 {
			t.Fatalf("cut at %d: stamps %v and %d pings, want %v and 1", cut, got, pings, want)
		}
		second := cut + rand.IntN(len(stream)-cut+1)
		if got, _ := parsePieces(t, stream, []int{cut, second}); !slices.Equal(got, want) {
			t.Fatalf("cuts at %d, %d: stamps %v, want %v", cut, second, got, want)
		}
	}
	// Random pieces of a stream with a frame larger than a poller's buffer.
	stream, want = testStream(true)
	for range 200 {
		var cuts []int
		for at := rand.IntN(100); at < len(stream); at += 1 + rand.IntN(pollerBufferSize/2) {
			cuts = append(cuts, at)
		}
		if got, _ := parsePieces(t, stream, cuts); !slices.Equal(got, want) {
			t.Fatalf("cuts %v: stamps %v, want %v", cuts, got, want)
		}
	}
}

func TestParserRefusesBadFrames(t *testing.T) {
	masked := serverFrame(ws.OpText, true, []byte("hi"))
	masked[1] |= ws.MaskBit
	huge := []byte{ws.FinBit | ws.OpText, 127}
	huge = binary.BigEndian.AppendUint64(huge, math.MaxInt64)
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"masked", masked},
		{"reserved bits", append([]byte{ws.FinBit | ws.Rsv1Bit | ws.OpText, 0}, serverFrame(ws.OpText, true, nil)...)},
		{"huge", huge},
		{"long control frame", serverFrame(ws.OpPing, true, make([]byte, 126))},
	} {
		var p frameParser
		err := p.feed(tc.frame, func(bool, byte, []byte) error { return nil })
		if err == nil {
			t.Errorf("%s frame: no error", tc.name)
		}
	}
}

// testClient returns a run whose window is open and a client of it whose
// writes go to a peer that discards them.
func testClient(t testing.TB) (*run, *client) {
	r := &run{epoch: time.Now(), lat: newShardedHistogram(1), closed: map[string]int{}}
	r.winEnd.Store(math.MaxInt64)
	ours, theirs := net.Pipe()
	go io.Copy(io.Discard, theirs)
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	c := &client{room: -1, conn: &wsConn{conn: ours}, lat: r.lat.shard(0),
		outside: new(atomic.Uint64), frames: new(atomic.Uint64), wire: new(atomic.Uint64)}
	return r, c
}

func TestReceiveHandlesEveryFrame(t *testing.T) {
	r, c := testClient(t)
	stream, want := testStream(true)
	for len(stream) > 0 {
		n := min(len(stream), 1+rand.IntN(5000))
		if err := r.receive(c, stream[:n]); err != nil {
			t.Fatalf("receive: %v", err)
		}
		stream = stream[n:]
	}
	if got := c.lat.Count(); got != uint64(len(want)) || r.pings.Load() != 1 || !c.ready.Load() {
		t.Errorf("recorded %d latencies, %d pings, ready %v; want %d, 1, true", got, r.pings.Load(), c.ready.Load(), len(want))
	}
	if c.frames.Load() != 6 || r.errorFrames.Load() != 1 {
		t.Errorf("%d messages with %d errors, want 6 and 1", c.frames.Load(), r.errorFrames.Load())
	}
}

func TestReceiveEndsConnection(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		key   string
	}{
		{"close", serverFrame(ws.OpClose, true, []byte{0x0F, 0xA9, 's', 'l', 'o', 'w'}), "4009"},
		{"close without code", serverFrame(ws.OpClose, true, nil), "1005"},
		{"fragment", serverFrame(ws.OpText, false, []byte("{")), "error"},
		{"continuation", serverFrame(ws.OpContinuation, true, []byte("}")), "error"},
	} {
		r, c := testClient(t)
		err := r.receive(c, tc.frame)
		if err == nil {
			t.Errorf("%s: receive returned no error", tc.name)
			continue
		}
		r.noteClosed(err)
		if r.closed[tc.key] != 1 {
			t.Errorf("%s: closed %v (%v), want %s×1", tc.name, r.closed, err, tc.key)
		}
	}
	r, c := testClient(t)
	if err := r.receive(c, serverFrame(ws.OpText, false, []byte("{"))); !errors.Is(err, errFragmented) {
		t.Errorf("FIN=0: %v, want errFragmented", err)
	}
}

// chatStream returns n server chat frames carrying stamps.
func chatStream(n int) []byte {
	var b []byte
	for i := range n {
		b = append(b, serverFrame(ws.OpText, true, []byte(serverChat(stamp(int64(1000+i)), i)))...)
	}
	return b
}

func TestReceiveDoesNotAllocate(t *testing.T) {
	r, c := testClient(t)
	stream := chatStream(100)
	if n := testing.AllocsPerRun(100, func() { _ = r.receive(c, stream) }); n != 0 {
		t.Errorf("receive allocates %v times per 100 messages, want 0", n)
	}
	if c.lat.Count() == 0 {
		t.Error("no latency recorded")
	}
}

func BenchmarkParseFrames(b *testing.B) {
	const frames = 100
	r, c := testClient(b)
	stream := chatStream(frames)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.receive(c, stream); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*frames), "ns/frame")
}
