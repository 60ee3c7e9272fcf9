package bench

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/ws"
)

// compressStream returns stream, a stream of server frames, with each text
// frame compressed as a partyline server with --compression sends it
// (ws.AppendCompressedText), the other frames as they are.
func compressStream(t testing.TB, stream []byte) []byte {
	t.Helper()
	var out []byte
	p := frameParser{}
	err := p.feed(stream, func(fin bool, op byte, payload []byte) error {
		if op == ws.OpText {
			out = ws.AppendCompressedText(out, payload)
		} else {
			out = append(out, serverFrame(op, fin, payload)...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deflateParser is the parser of a connection where permessage-deflate was
// negotiated.
func deflateParser() frameParser { return frameParser{deflate: true, inflated: new(atomic.Uint64)} }

func TestCompressedFramesParseIntoTheSameMessages(t *testing.T) {
	for _, big := range []bool{false, true} {
		plain, wantStamps := testStream(big)
		_, wantPings, wantTexts := parseMessages(t, frameParser{}, plain, nil)
		stream := compressStream(t, plain)
		if len(stream) >= len(plain) {
			t.Fatalf("big %v: compressed stream of %d bytes, plain %d: want it smaller", big, len(stream), len(plain))
		}
		check := func(cuts []int) {
			t.Helper()
			p := deflateParser()
			stamps, pings, texts := parseMessages(t, p, stream, cuts)
			if !slices.Equal(texts, wantTexts) || !slices.Equal(stamps, wantStamps) || pings != wantPings {
				t.Fatalf("big %v, cuts %v: %d messages, stamps %v, %d pings; want the plain stream's %d, %v, %d",
					big, cuts, len(texts), stamps, pings, len(wantTexts), wantStamps, wantPings)
			}
			if n := p.inflated.Load(); n != uint64(len(wantTexts)) {
				t.Fatalf("big %v, cuts %v: %d messages inflated, want %d", big, cuts, n, len(wantTexts))
			}
		}
		if !big {
			for cut := range len(stream) + 1 {
				check([]int{cut})
			}
			continue
		}
		for range 100 {
			var cuts []int
			for at := rand.IntN(100); at < len(stream); at += 1 + rand.IntN(pollerBufferSize/8) {
				cuts = append(cuts, at)
			}
			check(cuts)
		}
	}
}

func TestReceiveInflates(t *testing.T) {
	r, c := testClient(t)
	c.parser = deflateParser()
	plain, want := testStream(true)
	stream := compressStream(t, plain)
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
	if c.frames.Load() != 6 || c.parser.inflated.Load() != 6 || r.errorFrames.Load() != 1 {
		t.Errorf("%d messages, %d inflated, with %d errors; want 6, 6 and 1", c.frames.Load(), c.parser.inflated.Load(), r.errorFrames.Load())
	}
	if got, want := c.wire.Load(), uint64(len(compressStream(t, plain))); got != want {
		t.Errorf("wire bytes %d, want the stream's %d", got, want)
	}
}

func TestParserRefusesBadCompressedFrames(t *testing.T) {
	compressed := ws.AppendCompressedText(nil, []byte(serverChat(stamp(1), 1)))
	rsv := func(frame []byte, bits byte) []byte {
		frame = slices.Clone(frame)
		frame[0] |= bits
		return frame
	}
	bomb := ws.AppendCompressedText(nil, make([]byte, maxFrame+1))
	for _, tc := range []struct {
		name    string
		deflate bool
		frame   []byte
	}{
		{"compressed, not negotiated", false, compressed},
		{"compressed ping", true, rsv(serverFrame(ws.OpPing, true, nil), ws.Rsv1Bit)},
		{"compressed continuation", true, rsv(serverFrame(ws.OpContinuation, true, []byte("x")), ws.Rsv1Bit)},
		{"RSV2", true, rsv(compressed, 0x20)},
		{"not DEFLATE", true, rsv(serverFrame(ws.OpText, true, []byte{0xff, 0xff, 0xff, 0xff, 0xff}), ws.Rsv1Bit)},
		{"inflates past the limit", true, bomb},
	} {
		p := frameParser{deflate: tc.deflate}
		handled := false
		err := p.feed(tc.frame, func(bool, byte, []byte) error { handled = true; return nil })
		if err == nil || handled {
			t.Errorf("%s: error %v, handled %v; want an error and nothing handled", tc.name, err, handled)
		}
	}
}

func TestAcceptedDeflate(t *testing.T) {
	for _, tc := range []struct {
		answer  string // "": no header
		offered bool
		want    bool
		err     string
	}{
		{"", false, false, ""},
		{"", true, false, ""},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", true, true, ""},
		{"Permessage-Deflate;server_no_context_takeover;server_max_window_bits=12", true, true, ""},
		{"permessage-deflate; server_no_context_takeover", false, false, "none offered"},
		{"permessage-deflate; client_no_context_takeover", true, false, "server_no_context_takeover"},
		{"permessage-deflate", true, false, "server_no_context_takeover"},
		{"x-webkit-deflate-frame", true, false, "not offered"},
		{"permessage-deflate; server_no_context_takeover; mystery", true, false, "mystery"},
		{"permessage-deflate; server_no_context_takeover, permessage-deflate", true, false, "one offered"},
	} {
		h := http.Header{}
		if tc.answer != "" {
			h.Set("Sec-WebSocket-Extensions", tc.answer)
		}
		got, err := acceptedDeflate(h, tc.offered)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("acceptedDeflate(%q, offered %v) = %v, %v; want %v and an error naming %q", tc.answer, tc.offered, got, err, tc.want, tc.err)
		}
	}
}

func TestPaddingIsLikeText(t *testing.T) {
	frame, digits := chatFrame("r", 1024)
	content := frame[digits+stampDigits : len(frame)-2]
	if strings.Trim(string(content), "abcdefghijklmnopqrstuvwxyzI ") != "" {
		t.Fatalf("padding %q: want words and spaces", content)
	}
	again, _ := chatFrame("r", 1024)
	if !bytes.Equal(frame, again) {
		t.Error("chatFrame pads differently from one call to the next, want the same padding every run")
	}
	// As a server relays it: near English prose (55–68%, see appendPadding).
	msg := []byte(`{"type":"chat","room":"bench-fanout","username":"b7","content":"` + string(frame[digits-1:len(frame)-2]) +
		`","timestamp":1700000000000,"seq":123456,"id":"01JABCDEFGHJKMNPQRSTVWXYZ0"}`)
	ratio := float64(len(ws.AppendCompressedText(nil, msg))) / float64(len(ws.TextFrame(msg)))
	if ratio < 0.5 || ratio > 0.7 {
		t.Errorf("a 1 KB chat message compresses to %.0f%% of its frame, want 50–70%%, like prose", 100*ratio)
	}
	t.Logf("a %d-byte chat message compresses to %.1f%% of its frame", len(msg), 100*ratio)
}

func TestRunFanoutAgainstFakeWithCompression(t *testing.T) {
	cfg := shortConfig(startFake(t, &fakeServer{compress: true}), Fanout)
	cfg.Publishers, cfg.Rate, cfg.Compression = 2, 20, true
	res := runOK(t, cfg)
	checkDelivery(t, res, 5)
	// gorilla/websocket compresses every message once it is negotiated.
	if res.DeflateConnections != 5 || res.Frames == 0 || res.CompressedFrames != res.Frames || res.WireBytesPerDelivery <= 0 {
		t.Errorf("deflate on %d connections, %d of %d messages compressed, %.1f B per delivery: want 5, all, > 0",
			res.DeflateConnections, res.CompressedFrames, res.Frames, res.WireBytesPerDelivery)
	}
}

// TestSmokeCompressionAgainstPartyline runs fanout against a partyline with
// compression on: 1 KB chats come compressed and cost fewer bytes per
// delivery than without compression; 64-byte chats, under the server's
// minimum size, come as they are.
func TestSmokeCompressionAgainstPartyline(t *testing.T) {
	url := startPartylineWith(t, partyline.Options{Compression: true})
	run := func(compression bool, payload int) *Result {
		t.Helper()
		cfg := shortConfig(url, Fanout)
		cfg.Subscribers, cfg.Publishers, cfg.Rate, cfg.Payload, cfg.Compression = 10, 2, 20, payload, compression
		res := runOK(t, cfg)
		checkDelivery(t, res, 10)
		return res
	}
	plain, compressed, small := run(false, 1024), run(true, 1024), run(true, 64)
	if plain.DeflateConnections != 0 || plain.CompressedFrames != 0 {
		t.Errorf("without --compression: deflate on %d connections, %d messages compressed; want none",
			plain.DeflateConnections, plain.CompressedFrames)
	}
	if compressed.DeflateConnections != 10 || compressed.CompressedFrames == 0 {
		t.Errorf("1 KB with --compression: deflate on %d connections, %d messages compressed; want 10, some",
			compressed.DeflateConnections, compressed.CompressedFrames)
	}
	if got, was := compressed.WireBytesPerDelivery, plain.WireBytesPerDelivery; got <= 0 || got > 0.8*was {
		t.Errorf("1 KB: %.1f B per delivery compressed, %.1f plain; want at most 80%%", got, was)
	}
	if small.DeflateConnections != 10 || small.CompressedFrames != 0 {
		t.Errorf("64 B with --compression: deflate on %d connections, %d messages compressed; want 10, none",
			small.DeflateConnections, small.CompressedFrames)
	}
}

// chatStreamCompressed returns n server chat frames of about 1 KB carrying
// stamps, compressed.
func chatStreamCompressed(n int) []byte {
	frame, digits := chatFrame("r", 1024)
	content := string(frame[digits-1 : len(frame)-2])
	var b []byte
	for i := range n {
		b = ws.AppendCompressedText(b, []byte(serverChat(stamp(int64(1000+i))+content[stampLen:], i)))
	}
	return b
}

// BenchmarkParseCompressedFrames is BenchmarkParseFrames for 1 KB chats
// that came compressed: what --compression adds to the bench's reading.
func BenchmarkParseCompressedFrames(b *testing.B) {
	const frames = 100
	r, c := testClient(b)
	c.parser = deflateParser()
	stream := chatStreamCompressed(frames)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.receive(c, stream); err != nil {
			b.Fatal(err)
		}
	}
	if c.lat.Count() == 0 {
		b.Fatal("no latency recorded")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*frames), "ns/frame")
}
