package ws

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// clientCompress compresses payload as a client does for permessage-deflate:
// raw DEFLATE at level, sync-flushed, without the final 0x00 0x00 0xff 0xff.
func clientCompress(payload []byte, level int) []byte {
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		panic(err)
	}
	w.Write(payload)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte(syncTail))
}

// clientCompressFinal compresses payload into a DEFLATE stream that ends
// with a final block (BFINAL), which RFC 7692 §7.2.3.4 allows.
func clientCompressFinal(payload []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.DefaultCompression)
	w.Write(payload)
	w.Close()
	return b.Bytes()
}

// randomLevel is a compression level a client might use.
func randomLevel(rng *rand.Rand) int {
	levels := []int{flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression, flate.HuffmanOnly}
	return levels[rng.IntN(len(levels))]
}

// compressed is payload compressed by a client at the default level, as a
// string for frame.
func compressed(payload string) string {
	return string(clientCompress([]byte(payload), flate.DefaultCompression))
}

// deflateReader is a Reader with deflate enabled.
func deflateReader(limit int64) *Reader {
	r := NewReader(limit)
	r.EnableDeflate()
	return r
}

// serverFrame parses an unmasked server frame that fills b: its first byte
// and its payload; ok is false if b is no such frame.
func serverFrame(b []byte) (first byte, payload []byte, ok bool) {
	if len(b) < 2 || b[1]&0x80 != 0 {
		return 0, nil, false
	}
	header, n := 2, int(b[1])
	switch {
	case n == 126 && len(b) >= 4:
		header, n = 4, int(binary.BigEndian.Uint16(b[2:]))
	case n == 127 && len(b) >= 10:
		header, n = 10, int(binary.BigEndian.Uint64(b[2:]))
	}
	if len(b) != header+n {
		return 0, nil, false
	}
	return b[0], b[header:], true
}

func TestAppendCompressedText(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 100, 200, 1000, 70000, 300000} {
		payload := randomText(rng, n)
		prefix := []byte("already here")
		b := AppendCompressedText(slices.Clone(prefix), payload)
		if !bytes.HasPrefix(b, prefix) {
			t.Fatalf("%d bytes: dst's bytes changed: %q", n, b[:len(prefix)])
		}
		first, body, ok := serverFrame(b[len(prefix):])
		if !ok {
			t.Fatalf("%d bytes: no server frame after dst's bytes: % x", n, b[len(prefix):min(len(b), len(prefix)+14)])
		}
		if first != 0x80|0x40|OpText {
			t.Errorf("%d bytes: first byte %#x, want FIN|RSV1|text", n, first)
		}
		if bytes.HasSuffix(body, []byte(syncTail)) {
			t.Errorf("%d bytes: compressed payload still ends with 00 00 ff ff", n)
		}
		inflated, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(body), strings.NewReader(inflateTail))))
		if err != nil || !bytes.Equal(inflated, payload) {
			t.Errorf("%d bytes: compress/flate inflates the frame to %d bytes, %v", n, len(inflated), err)
		}
		// As a client would send it back: masked.
		got, err := feed(deflateReader(testLimit), encodeFrame(first, body, 0, &testKey))
		if err != nil || len(got) != 1 || got[0] != (message{OpText, string(payload)}) {
			t.Errorf("%d bytes: a Reader handled %d messages, %v", n, len(got), err)
		}
	}
}

// TestAppendCompressedTextCompresses checks that a chat-like payload comes
// out smaller, and that each message is compressed alone: the same payload
// twice gives the same frame twice (no context taken over).
func TestAppendCompressedTextCompresses(t *testing.T) {
	payload := chatPayload(1024)
	one := AppendCompressedText(nil, payload)
	two := AppendCompressedText(nil, payload)
	if len(one) >= len(payload)/2 {
		t.Errorf("a %d-byte chat payload compressed to a %d-byte frame", len(payload), len(one))
	}
	if !bytes.Equal(one, two) {
		t.Errorf("the same payload twice gave different frames: context was taken over")
	}
	if empty := AppendCompressedText(nil, nil); !bytes.Equal(empty, []byte{0xC1, 1, 0}) {
		t.Errorf("empty payload: % x, want c1 01 00 (RFC 7692 §7.2.3.6)", empty)
	}
}

// TestAppendCompressedTextConcurrently compresses from many goroutines at
// once (run with -race): each frame must hold its own payload.
func TestAppendCompressedTextConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				payload := fmt.Appendf(nil, "goroutine %d message %d %s", g, i, strings.Repeat("abc", i*10))
				_, body, ok := serverFrame(AppendCompressedText(nil, payload))
				got, err := feed(deflateReader(testLimit), encodeFrame(0xC1, body, 0, &testKey))
				if !ok || err != nil || len(got) != 1 || got[0].payload != string(payload) {
					t.Errorf("goroutine %d message %d: handled %v, %v", g, i, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestAppendCompressedTextAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race, sync.Pool drops what it is given")
	}
	payload := chatPayload(1024)
	dst := AppendCompressedText(nil, payload)
	allocs := testing.AllocsPerRun(100, func() {
		dst = AppendCompressedText(dst[:0], payload)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame into a buffer big enough, want 0", allocs)
	}
}

func TestDeflateReaderAccepts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	long := string(randomText(rng, 100000))
	hello := compressed("hello")
	cafe := compressed("café au lait")
	rows := []struct {
		name  string
		limit int64 // testLimit when 0
		input []byte
		want  []message
	}{
		{"compressed text", 0, frame(0xC1, hello), []message{{OpText, "hello"}}},
		{"compressed binary", 0, frame(0xC2, compressed("\xff\x00\xfe")), []message{{OpBinary, "\xff\x00\xfe"}}},
		{"uncompressed text", 0, frame(0x81, "plain"), []message{{OpText, "plain"}}},
		{"empty compressed message", 0, frame(0xC1, "\x00"), []message{{OpText, ""}}},
		{"stored blocks", 0, frame(0xC1, string(clientCompress([]byte(long), flate.NoCompression))), []message{{OpText, long}}},
		{"long, 64-bit length", 0, frame(0xC1, compressed(long)), []message{{OpText, long}}},
		{"ends with a final block", 0, frame(0xC1, string(clientCompressFinal([]byte("final")))), []message{{OpText, "final"}}},
		{"exactly the limit inflated", 5, frame(0xC1, hello), []message{{OpText, "hello"}}},
		{"compressed, plain, compressed", 0,
			join(frame(0xC1, hello), frame(0x81, "plain"), frame(0xC2, hello)),
			[]message{{OpText, "hello"}, {OpText, "plain"}, {OpBinary, "hello"}}},
		{"fragments", 0,
			join(frame(0x41, cafe[:3]), frame(0x00, cafe[3:7]), frame(0x80, cafe[7:])),
			[]message{{OpText, "café au lait"}}},
		{"empty first and last fragments", 0,
			join(frame(0x41, ""), frame(0x00, cafe), frame(0x80, "")),
			[]message{{OpText, "café au lait"}}},
		{"controls between fragments", 0,
			join(frame(0x41, cafe[:2]), frame(0x89, "p"), frame(0x00, cafe[2:5]), frame(0x8A, "q"),
				frame(0x88, closePayload(1000, "")), frame(0x80, cafe[5:])),
			[]message{{OpPing, "p"}, {OpPong, "q"}, {OpClose, closePayload(1000, "")}, {OpText, "café au lait"}}},
		{"fragments, then a whole compressed message", 0,
			join(frame(0x42, hello[:2]), frame(0x80, hello[2:]), frame(0xC1, hello)),
			[]message{{OpBinary, "hello"}, {OpText, "hello"}}},
		{"rune split by the compression", 0, frame(0xC1, compressed(strings.Repeat("é", 1000))), []message{{OpText, strings.Repeat("é", 1000)}}},
	}
	checkAccepts(t, rows, deflateReader)
}

func TestDeflateReaderRefuses(t *testing.T) {
	hello := compressed("hello")
	bigger := compressed(strings.Repeat("x", 1000))
	random := compressed(string(randomText(rand.New(rand.NewPCG(8, 9)), 1000)))
	rows := []struct {
		name    string
		limit   int64 // testLimit when 0
		deflate bool
		input   []byte
		code    int
	}{
		{"rsv1 without EnableDeflate", 0, false, frame(0xC1, hello), CloseProtocolError},
		{"rsv1 on a continuation", 0, true, join(frame(0x41, hello[:2]), frame(0xC0, hello[2:])), CloseProtocolError},
		{"rsv1 on a continuation of a plain message", 0, true, join(frame(0x01, "a"), frame(0xC0, hello)), CloseProtocolError},
		{"rsv1 on a ping", 0, true, frame(0xC9, ""), CloseProtocolError},
		{"rsv1 on a pong", 0, true, frame(0xCA, ""), CloseProtocolError},
		{"rsv1 on a close", 0, true, frame(0xC8, ""), CloseProtocolError},
		{"rsv2", 0, true, frame(0xA1, hello), CloseProtocolError},
		{"rsv3", 0, true, frame(0x91, hello), CloseProtocolError},
		{"rsv1 and rsv2", 0, true, frame(0xE1, hello), CloseProtocolError},
		{"rsv1 on an unknown opcode", 0, true, frame(0xC3, hello), CloseProtocolError},
		{"compressed message inside a message", 0, true, join(frame(0x01, "a"), frame(0xC1, hello)), CloseProtocolError},
		{"not deflate", 0, true, frame(0xC1, "\xff\xff\xff\xff"), CloseInvalidData},
		{"empty payload", 0, true, frame(0xC1, ""), CloseInvalidData}, // "" + 00 00 ff ff is no DEFLATE
		{"cut short", 0, true, frame(0xC1, random[:len(random)/2]), CloseInvalidData},
		{"inflates to text not utf-8", 0, true, frame(0xC1, compressed("caf\xe9")), CloseInvalidData},
		{"fragments inflate to text not utf-8", 0, true, join(frame(0x41, compressed("a\xc3")[:1]), frame(0x80, compressed("a\xc3")[1:])), CloseInvalidData},
		{"inflates past the limit", 999, true, frame(0xC1, bigger), CloseTooBig},
		{"fragments inflate past the limit", 999, true, join(frame(0x41, bigger[:5]), frame(0x80, bigger[5:])), CloseTooBig},
		{"compressed bytes past their limit, header alone", 10, true, encodeFrame(0xC2, make([]byte, 300), 0, &testKey)[:4], CloseTooBig},
		{"compressed fragments past their limit", 10, true, join(frame(0x42, strings.Repeat("x", 200)), frame(0x80, strings.Repeat("x", 100))[:6]), CloseTooBig},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			limit := row.limit
			if limit == 0 {
				limit = testLimit
			}
			for _, size := range []int{len(row.input), 1} {
				r := NewReader(limit)
				if row.deflate {
					r.EnableDeflate()
				}
				got, err := feed(r, split(row.input, size)...)
				if closeCode(err) != row.code {
					t.Errorf("in pieces of %d: error %v, want close code %d (handled %v)", size, err, row.code, got)
				}
				if r.buf != nil || r.compressed {
					t.Errorf("in pieces of %d: after the error, %d bytes held, compressed %v", size, len(r.buf), r.compressed)
				}
			}
		})
	}
}

// TestCompressedLimit: the compressed bytes of a message that fits may be a
// little longer than the limit, never absurdly so, and the sum never
// overflows.
func TestCompressedLimit(t *testing.T) {
	for _, limit := range []int64{0, 200, 16384, 1 << 20, 1 << 40} {
		got := compressedLimit(limit)
		stored := limit + 5*(limit/65535+1) + 16 // incompressible data in stored blocks
		if got < stored || got > limit+limit/32+1024 {
			t.Errorf("compressedLimit(%d) = %d, want a little more than %d", limit, got, stored)
		}
	}
	most := NewReader(math.MaxInt64).limit
	for _, limit := range []int64{most, most - 1000} {
		if got := compressedLimit(limit); got != most {
			t.Errorf("compressedLimit(%d) = %d, want %d, the most a Reader's limit may be", limit, got, most)
		}
	}
	// Incompressible data at the limit, stored, is accepted.
	payload := randomBytes(rand.New(rand.NewPCG(5, 6)), 200000)
	stored := clientCompress(payload, flate.NoCompression)
	got, err := feed(deflateReader(int64(len(payload))), frame(0xC2, string(stored)))
	if err != nil || len(got) != 1 || got[0].payload != string(payload) {
		t.Errorf("%d incompressible bytes, %d stored: handled %d messages, %v", len(payload), len(stored), len(got), err)
	}
}

// bomb is 10 MB of zeros compressed as tightly as DEFLATE allows, about
// 10 KB.
func bomb(t testing.TB) (compressed []byte, inflated int) {
	t.Helper()
	inflated = 10 << 20
	compressed = clientCompress(make([]byte, inflated), flate.BestCompression)
	if len(compressed) > 12<<10 {
		t.Fatalf("10 MB of zeros compressed to %d bytes, want about 10 KB", len(compressed))
	}
	return compressed, inflated
}

// TestInflateStopsNearTheLimit measures how much of a bomb the inflater
// reads before it refuses the message: zeros compress evenly, so the input
// consumed tells how much output was produced, inside compress/flate too.
func TestInflateStopsNearTheLimit(t *testing.T) {
	const limit = 16384
	compressed, inflated := bomb(t)
	f := getInflater()
	defer f.release()
	out, err := f.inflate(compressed, limit)
	if closeCode(err) != CloseTooBig || out != nil {
		t.Fatalf("inflate: %d bytes, %v; want CloseTooBig", len(out), err)
	}
	consumed := len(compressed) - len(f.in.data)
	produced := consumed * (inflated / len(compressed)) // at most, counting the block header as data
	t.Logf("read %d of %d compressed bytes: at most %d bytes inflated, output buffer %d bytes", consumed, len(compressed), produced, cap(f.out))
	if produced > limit+64<<10 {
		t.Errorf("read %d of %d compressed bytes, about %d bytes inflated; want no more than the limit %d and a window", consumed, len(compressed), produced, limit)
	}
	if cap(f.out) > limit+1 {
		t.Errorf("output buffer of %d bytes for a limit of %d", cap(f.out), limit)
	}
}

// TestZipBomb feeds the bomb to a Reader, whole and in fragments: it is
// refused as too big, and the Reader allocates nothing near what it would
// inflate to.
func TestZipBomb(t *testing.T) {
	const limit = 16384
	compressed, inflated := bomb(t)
	whole := frame(0xC1, string(compressed))
	third := len(compressed) / 3
	fragments := join(frame(0x41, string(compressed[:third])), frame(0x89, ""),
		frame(0x00, string(compressed[third:2*third])), frame(0x80, string(compressed[2*third:])))
	for _, tc := range []struct {
		name   string
		pieces [][]byte
	}{
		{"one frame", [][]byte{whole}},
		{"one frame in pieces", split(whole, 1000)},
		{"fragments", [][]byte{fragments}},
	} {
		r := deflateReader(limit)
		feed(r, frame(0xC1, "\x00")) // borrows an inflater, returned to the pool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		got, err := feed(r, tc.pieces...)
		runtime.ReadMemStats(&after)
		if closeCode(err) != CloseTooBig {
			t.Errorf("%s: error %v, want close code %d", tc.name, err, CloseTooBig)
		}
		for _, m := range got {
			if m.op < OpClose {
				t.Errorf("%s: handled a data message of %d bytes", tc.name, len(m.payload))
			}
		}
		allocated := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d bytes allocated to refuse %d compressed bytes that inflate to %d", tc.name, allocated, len(compressed), inflated)
		if allocated > 512<<10 {
			t.Errorf("%s: %d bytes allocated, want far less than the %d the bomb inflates to", tc.name, allocated, inflated)
		}
	}
}

func TestDeflateReaderProperty(t *testing.T) {
	testReaderProperty(t, true)
}

// TestFeedCompressedAllocatesNothing: a whole compressed frame per Feed
// borrows the pooled inflater and its output buffer.
func TestFeedCompressedAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race, sync.Pool drops what it is given")
	}
	masked := frame(0xC1, compressed(string(chatPayload(1024))))
	data := make([]byte, len(masked))
	r := deflateReader(testLimit)
	calls := 0
	handle := func(op byte, payload []byte) bool { calls++; return len(payload) == 1024 }
	allocs := testing.AllocsPerRun(100, func() {
		copy(data, masked)
		if err := r.Feed(data, handle); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || calls == 0 || r.done {
		t.Errorf("%v allocations per Feed, %d calls, done %v; want 0 allocations", allocs, calls, r.done)
	}
}

// chatPayload is about n bytes of chat-like JSON messages, the kind the
// server fans out.
func chatPayload(n int) []byte {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	words := strings.Fields("hello world the quick brown fox jumps over lazy dog meeting at noon " +
		"lunch ready ship it looks good to me deploy tomorrow coffee anyone bug fixed thanks")
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	var b []byte
	for seq := 1000; len(b) < n; seq++ {
		var content []string
		for range 3 + rng.IntN(10) {
			content = append(content, words[rng.IntN(len(words))])
		}
		b = fmt.Appendf(b, `{"type":"message","room":"lobby","seq":%d,"user":%q,"ts":%d,"content":%q}`,
			seq, users[rng.IntN(len(users))], 1767225600000+rng.IntN(1000000), strings.Join(content, " "))
	}
	return b[:n]
}

// BenchmarkCompressText is what the server pays per fanned-out message:
// one compressed frame of chat-like JSON, at the level AppendCompressedText
// uses and at the default level for comparison, into a buffer reused; and
// AppendCompressedText itself into a new frame (dst nil), as the server
// calls it. "ratio" is the frame's length over the payload's.
func BenchmarkCompressText(b *testing.B) {
	for _, level := range []struct {
		name string
		pool *compressorPool
	}{
		{"BestSpeed", &compressorPool{level: flate.BestSpeed}},
		{"Default", &compressorPool{level: flate.DefaultCompression}},
	} {
		for _, size := range []int{64, 1024, 16384} {
			b.Run(fmt.Sprintf("%s/%dB", level.name, size), func(b *testing.B) {
				payload := chatPayload(size)
				dst := level.pool.appendFrame(nil, 0xC1, payload)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					dst = level.pool.appendFrame(dst[:0], 0xC1, payload)
				}
				b.ReportMetric(float64(len(dst))/float64(size), "ratio")
			})
		}
	}
	for _, size := range []int{64, 1024, 16384} {
		b.Run(fmt.Sprintf("AppendCompressedText/%dB", size), func(b *testing.B) {
			payload := chatPayload(size)
			var frame []byte
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				frame = AppendCompressedText(nil, payload)
			}
			b.ReportMetric(float64(len(frame))/float64(size), "ratio")
		})
	}
}

// BenchmarkFeedCompressed is what a compressed inbound message costs: the
// frame parsed and inflated.
func BenchmarkFeedCompressed(b *testing.B) {
	for _, size := range []int{64, 1024, 16384} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			masked := frame(0xC1, compressed(string(chatPayload(size))))
			data := make([]byte, len(masked))
			r := deflateReader(testLimit)
			handle := func(op byte, payload []byte) bool { return true }
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(data, masked)
				if err := r.Feed(data, handle); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDeflateReader is FuzzReader with deflate enabled, seeded with
// compressed messages: besides what FuzzReader checks, no data message
// handed over may be longer than the limit, however much its bytes inflate.
func FuzzDeflateReader(f *testing.F) {
	hello := compressed("hello")
	zeros := string(clientCompress(make([]byte, 100000), flate.BestCompression))
	seeds := [][]byte{
		frame(0xC1, hello),
		frame(0xC2, compressed("\x00\xff")),
		frame(0xC1, "\x00"),
		frame(0xC1, ""),
		frame(0xC1, string(clientCompressFinal([]byte("final")))),
		frame(0xC1, string(clientCompress([]byte(strings.Repeat("ab", 80)), flate.NoCompression))),
		frame(0xC1, string(clientCompress([]byte(strings.Repeat("é", 90)), flate.HuffmanOnly))),
		join(frame(0x41, hello[:2]), frame(0x89, "ping"), frame(0x80, hello[2:])),
		join(frame(0x41, hello[:2]), frame(0xC0, hello[2:])),
		join(frame(0xC1, hello), frame(0x81, "plain"), frame(0xC1, hello)),
		frame(0xC1, zeros),
		frame(0xC1, compressed(strings.Repeat("x", fuzzLimit+1))),
		frame(0xC1, compressed("caf\xe9")),
		frame(0xC1, "\xff\xff\xff"),
		frame(0xC9, ""),
		frame(0xE1, hello),
	}
	for _, seed := range seeds {
		f.Add(seed, uint(len(seed)/2))
	}
	f.Fuzz(func(t *testing.T, input []byte, cut uint) {
		messages := checkCutDoesNotMatter(t, input, cut, func() *Reader { return deflateReader(fuzzLimit) })
		for _, m := range messages {
			if m.op < OpClose && len(m.payload) > fuzzLimit {
				t.Fatalf("handed over a message of %d bytes, limit %d", len(m.payload), fuzzLimit)
			}
		}
	})
}
