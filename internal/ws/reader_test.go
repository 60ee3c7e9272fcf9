package ws

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

const testLimit = 1 << 20

func TestReaderRefuses(t *testing.T) {
	tooLong := strings.Repeat("x", 126)
	type row struct {
		name  string
		limit int64 // testLimit when 0
		input []byte
		code  int
	}
	rows := []row{
		{"unmasked", 0, encodeFrame(0x81, []byte("hi"), 0, nil), CloseProtocolError},
		{"unmasked empty", 0, encodeFrame(0x89, nil, 0, nil), CloseProtocolError},
		{"rsv1", 0, frame(0xC1, "hi"), CloseProtocolError},
		{"rsv2", 0, frame(0xA1, "hi"), CloseProtocolError},
		{"rsv3", 0, frame(0x91, "hi"), CloseProtocolError},
		{"rsv on a continuation", 0, join(frame(0x01, "a"), frame(0xC0, "b")), CloseProtocolError},
		{"ping longer than 125", 0, frame(0x89, tooLong), CloseProtocolError},
		{"ping longer than 125, 64-bit length alone", 0, []byte{0x89, 0xFF, 0, 0, 0, 0, 0, 0, 0, 126}, CloseProtocolError},
		{"pong longer than 125", 0, frame(0x8A, tooLong), CloseProtocolError},
		{"close longer than 125", 0, frame(0x88, closePayload(1000, tooLong[2:])), CloseProtocolError},
		{"ping without fin", 0, frame(0x09, ""), CloseProtocolError},
		{"pong without fin", 0, frame(0x0A, ""), CloseProtocolError},
		{"close without fin", 0, frame(0x08, ""), CloseProtocolError},
		{"continuation first", 0, frame(0x80, "x"), CloseProtocolError},
		{"unfinished continuation first", 0, frame(0x00, "x"), CloseProtocolError},
		{"continuation after a whole message", 0, join(frame(0x81, "a"), frame(0x80, "b")), CloseProtocolError},
		{"text inside a message", 0, join(frame(0x01, "a"), frame(0x81, "b")), CloseProtocolError},
		{"binary inside a message", 0, join(frame(0x02, "a"), frame(0x02, "b")), CloseProtocolError},
		{"length with the top bit set", 0, join([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}, testKey[:]), CloseProtocolError},
		{"too big", 10, frame(0x81, "hello world"), CloseTooBig},
		{"too big, header alone", 10, frame(0x82, "hello world")[:6], CloseTooBig},
		{"too big, 16-bit length alone", 10, encodeFrame(0x82, make([]byte, 300), 0, &testKey)[:4], CloseTooBig},
		{"too big, 64-bit length alone", 10, []byte{0x82, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0}, CloseTooBig},
		{"too big over fragments", 10, join(frame(0x01, "hello "), frame(0x80, "world")), CloseTooBig},
		{"too big over fragments, header alone", 10, join(frame(0x01, "hello "), frame(0x80, "world")[:6]), CloseTooBig},
		{"text not utf-8", 0, frame(0x81, "caf\xe9"), CloseInvalidData},
		{"joined text not utf-8", 0, join(frame(0x01, "a\xc3"), frame(0x80, "(")), CloseInvalidData},
		{"close of 1 byte", 0, frame(0x88, "\x03"), CloseProtocolError},
		{"close reason not utf-8", 0, frame(0x88, closePayload(1000, "\xff")), CloseInvalidData},
	}
	for op := range byte(16) {
		if op > OpBinary && op < OpClose || op > OpPong {
			rows = append(rows, row{"opcode " + strconv.Itoa(int(op)), 0, frame(0x80|op, ""), CloseProtocolError})
		}
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535} {
		rows = append(rows, row{"close code " + strconv.Itoa(int(code)), 0,
			frame(0x88, closePayload(code, "")), CloseProtocolError})
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			limit := row.limit
			if limit == 0 {
				limit = testLimit
			}
			for _, size := range []int{len(row.input), 1} {
				r := NewReader(limit)
				got, err := feed(r, split(row.input, size)...)
				if closeCode(err) != row.code {
					t.Errorf("in pieces of %d: error %v, want close code %d (handled %v)", size, err, row.code, got)
				}
				if ce, _ := err.(*CloseError); row.code == CloseTooBig && ce != nil && ce.Reason != "message too big" {
					t.Errorf("in pieces of %d: reason %q, want %q", size, ce.Reason, "message too big")
				}
				if r.Buffered() != 0 || r.buf != nil {
					t.Errorf("in pieces of %d: after the error, %d bytes held", size, r.Buffered())
				}
				if err := r.Feed(frame(0x81, "more"), func(byte, []byte) bool {
					t.Errorf("in pieces of %d: handle called after the error", size)
					return true
				}); err != nil {
					t.Errorf("in pieces of %d: Feed after the error: %v", size, err)
				}
			}
		})
	}
}

func TestReaderAccepts(t *testing.T) {
	long := strings.Repeat("é", 40000) // 80,000 bytes: a 64-bit length
	ping125 := strings.Repeat("p", 125)
	rows := []struct {
		name  string
		limit int64 // testLimit when 0
		input []byte
		want  []message
	}{
		{"text", 0, frame(0x81, "hello"), []message{{OpText, "hello"}}},
		{"empty text", 0, frame(0x81, ""), []message{{OpText, ""}}},
		{"binary not utf-8", 0, frame(0x82, "\xff\x00"), []message{{OpBinary, "\xff\x00"}}},
		{"exactly the limit", 5, frame(0x81, "hello"), []message{{OpText, "hello"}}},
		{"exactly the limit over fragments", 5, join(frame(0x01, "hel"), frame(0x80, "lo")), []message{{OpText, "hello"}}},
		{"16-bit length for 5 bytes", 0, encodeFrame(0x81, []byte("hello"), 2, &testKey), []message{{OpText, "hello"}}},
		{"64-bit length for 5 bytes", 0, encodeFrame(0x81, []byte("hello"), 8, &testKey), []message{{OpText, "hello"}}},
		{"16-bit length", 0, frame(0x81, long[:300]), []message{{OpText, long[:300]}}},
		{"64-bit length", 0, frame(0x81, long), []message{{OpText, long}}},
		{"fragments", 0, join(frame(0x01, "a"), frame(0x00, "b"), frame(0x80, "c")), []message{{OpText, "abc"}}},
		{"empty fragments", 0, join(frame(0x02, ""), frame(0x00, ""), frame(0x80, "")), []message{{OpBinary, ""}}},
		{"rune split over fragments", 0, join(frame(0x01, "caf\xc3"), frame(0x80, "\xa9")), []message{{OpText, "café"}}},
		{"controls inside a message", 0,
			join(frame(0x01, "a"), frame(0x89, "p"), frame(0x00, "b"), frame(0x8A, "q"), frame(0x80, "c"), frame(0x89, "")),
			[]message{{OpPing, "p"}, {OpPong, "q"}, {OpText, "abc"}, {OpPing, ""}}},
		{"ping of 125 bytes", 0, frame(0x89, ping125), []message{{OpPing, ping125}}},
		{"ping with a 16-bit length", 0, encodeFrame(0x89, []byte("p"), 2, &testKey), []message{{OpPing, "p"}}},
		{"ping with a 64-bit length", 0, encodeFrame(0x89, []byte("p"), 8, &testKey), []message{{OpPing, "p"}}},
		{"empty close", 0, frame(0x88, ""), []message{{OpClose, ""}}},
		{"close 1000", 0, frame(0x88, closePayload(1000, "bye")), []message{{OpClose, closePayload(1000, "bye")}}},
		{"close inside a message", 0, join(frame(0x01, "a"), frame(0x88, closePayload(1001, "")), frame(0x80, "b")),
			[]message{{OpClose, closePayload(1001, "")}, {OpText, "ab"}}},
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999} {
		payload := closePayload(code, "é")
		rows = append(rows, acceptRow{"close code " + strconv.Itoa(int(code)), 0, frame(0x88, payload), []message{{OpClose, payload}}})
	}
	checkAccepts(t, rows, NewReader)
}

// acceptRow is a stream a Reader must accept, and the messages it must
// hand over for it.
type acceptRow = struct {
	name  string
	limit int64 // 0: testLimit
	input []byte
	want  []message
}

// checkAccepts feeds each row's input to a new Reader, whole and in pieces
// of 1 and 7 bytes, and checks what it handled and that it holds nothing
// at the end.
func checkAccepts(t *testing.T, rows []acceptRow, newReader func(limit int64) *Reader) {
	t.Helper()
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			limit := row.limit
			if limit == 0 {
				limit = testLimit
			}
			for _, size := range []int{len(row.input), 1, 7} {
				r := newReader(limit)
				got, err := feed(r, split(row.input, size)...)
				if err != nil {
					t.Fatalf("in pieces of %d: %v", size, err)
				}
				if !slices.Equal(got, row.want) {
					t.Errorf("in pieces of %d: handled %.200v, want %.200v", size, got, row.want)
				}
				if r.buf != nil || r.compressed {
					t.Errorf("in pieces of %d: %d bytes held, compressed %v at the end", size, len(r.buf), r.compressed)
				}
			}
		})
	}
}

func TestReaderIsSmall(t *testing.T) {
	if size := unsafe.Sizeof(Reader{}); size > 48 {
		t.Errorf("a Reader is %d bytes, want at most 48", size)
	}
}

// TestReaderHoldsOnlyWhatStraddles checks what is kept between Feeds: just
// the bytes of an incomplete frame or message, in a slice sized for them,
// and nothing once it is complete.
func TestReaderHoldsOnlyWhatStraddles(t *testing.T) {
	r := NewReader(testLimit)
	payload := strings.Repeat("x", 1000)
	whole := frame(0x81, payload)
	if _, err := feed(r, whole[:10]); err != nil {
		t.Fatal(err)
	}
	if len(r.buf) != 10 || cap(r.buf) != 10 {
		t.Errorf("holding 10 bytes of a frame: len %d, cap %d, want 10, 10", len(r.buf), cap(r.buf))
	}
	got, err := feed(r, whole[10:])
	if err != nil || len(got) != 1 || got[0].payload != payload {
		t.Fatalf("rest of the frame: handled %d messages, error %v", len(got), err)
	}
	if r.buf != nil {
		t.Errorf("after the frame, %d bytes (capacity %d) held, want nil", len(r.buf), cap(r.buf))
	}

	// A fragment is kept unmasked, without its header.
	if _, err := feed(r, frame(0x01, "hello ")); err != nil {
		t.Fatal(err)
	}
	if string(r.buf) != "hello " {
		t.Errorf("after the first fragment, held %q, want %q", r.buf, "hello ")
	}
	if _, err := feed(r, frame(0x80, "world")); err != nil {
		t.Fatal(err)
	}
	if r.buf != nil {
		t.Errorf("after the last fragment, %d bytes held, want nil", len(r.buf))
	}
}

// TestReaderGrowsWithinTheFrame feeds a frame byte by byte: the buffer never
// grows beyond the frame.
func TestReaderGrowsWithinTheFrame(t *testing.T) {
	r := NewReader(testLimit)
	whole := frame(0x82, strings.Repeat("x", 5000))
	allocs := 0
	for i, piece := range split(whole, 1) {
		before := cap(r.buf)
		if _, err := feed(r, piece); err != nil {
			t.Fatal(err)
		}
		if cap(r.buf) != before {
			allocs++
		}
		if i < len(whole)-1 && (r.Buffered() != i+1 || cap(r.buf) > len(whole)) {
			t.Fatalf("after %d bytes: len %d, cap %d, frame of %d", i+1, len(r.buf), cap(r.buf), len(whole))
		}
	}
	if allocs > 20 {
		t.Errorf("%d allocations to hold a frame of %d bytes fed byte by byte", allocs, len(whole))
	}
}

func TestReaderStopsWhenHandleSaysSo(t *testing.T) {
	r := NewReader(testLimit)
	input := join(frame(0x81, "one"), frame(0x81, "two"), frame(0x01, "thr"))
	var got []string
	err := r.Feed(input, func(op byte, payload []byte) bool {
		got = append(got, string(payload))
		return false
	})
	if err != nil || !slices.Equal(got, []string{"one"}) {
		t.Errorf("Feed: handled %q, error %v; want [one], nil", got, err)
	}
	if r.buf != nil {
		t.Errorf("after stopping, %d bytes held", len(r.buf))
	}
	err = r.Feed(frame(0x81, "four"), func(byte, []byte) bool {
		t.Error("handle called after it returned false")
		return true
	})
	if err != nil {
		t.Errorf("Feed after stopping: %v", err)
	}
}

// TestReaderStopsInsideAHeldFrame stops on a frame completed from held bytes.
func TestReaderStopsInsideAHeldFrame(t *testing.T) {
	r := NewReader(testLimit)
	input := join(frame(0x01, "a"), frame(0x89, "ping"), frame(0x80, "b"))
	calls := 0
	stop := func(byte, []byte) bool { calls++; return false }
	for _, piece := range split(input, 3) {
		if err := r.Feed(piece, stop); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 || r.buf != nil {
		t.Errorf("handle called %d times, %d bytes held; want 1, 0", calls, len(r.buf))
	}
}

// TestFeedAllocatesNothing covers the common case: each Feed holds one whole
// frame, which is unmasked in place and handed over.
func TestFeedAllocatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"text", frame(0x81, `{"type":"chat","room":"lobby","content":"hello, world"}`)},
		{"ping", frame(0x89, "")},
		{"ping with payload", frame(0x89, "12345678")},
	} {
		r := NewReader(testLimit)
		data := make([]byte, len(tc.frame))
		calls := 0
		handle := func(op byte, payload []byte) bool { calls++; return true }
		allocs := testing.AllocsPerRun(100, func() {
			copy(data, tc.frame) // Feed unmasked the last one in place
			if err := r.Feed(data, handle); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 || calls == 0 {
			t.Errorf("%s: %v allocations per Feed, %d calls; want 0", tc.name, allocs, calls)
		}
	}
}

func TestFeedUnmasksInPlace(t *testing.T) {
	data := frame(0x81, "hello")
	r := NewReader(testLimit)
	err := r.Feed(data, func(op byte, payload []byte) bool {
		if &payload[0] != &data[6] {
			t.Error("payload is a copy, want a slice of data")
		}
		return true
	})
	if err != nil || !bytes.Equal(data[6:], []byte("hello")) {
		t.Errorf("Feed: %v, data holds %q", err, data[6:])
	}
}

func BenchmarkFeed(b *testing.B) {
	masked := frame(0x81, strings.Repeat("x", 64))
	data := make([]byte, len(masked))
	r := NewReader(testLimit)
	handle := func(op byte, payload []byte) bool { return true }
	b.ReportAllocs()
	b.SetBytes(int64(len(masked)))
	for b.Loop() {
		copy(data, masked)
		if err := r.Feed(data, handle); err != nil {
			b.Fatal(err)
		}
	}
}

func TestIsPong(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes []byte
		want  bool
	}{
		{"empty pong", frame(0x8A, ""), true},
		{"pong with the ping's payload", frame(0x8A, "0123456789"), true},
		{"longest pong", frame(0x8A, strings.Repeat("p", 125)), true},
		{"nothing", nil, false},
		{"unmasked pong", encodeFrame(0x8A, nil, 0, nil), false},
		{"pong with a 16-bit length", encodeFrame(0x8A, []byte("p"), 2, &testKey), false},
		{"pong without FIN", frame(0x0A, ""), false},
		{"pong with RSV1", frame(0xCA, ""), false},
		{"ping", frame(0x89, ""), false},
		{"text", frame(0x81, "pong"), false},
		{"half a pong", frame(0x8A, "0123")[:7], false},
		{"two pongs", join(frame(0x8A, ""), frame(0x8A, "")), false},
		{"a pong and a message", join(frame(0x8A, ""), frame(0x81, "hi")), false},
	} {
		if got := IsPong(tc.bytes); got != tc.want {
			t.Errorf("%s: IsPong = %v, want %v", tc.name, got, tc.want)
		}
		if !tc.want {
			continue
		}
		got, err := feed(NewReader(testLimit), tc.bytes)
		if err != nil || len(got) != 1 || got[0].op != OpPong {
			t.Errorf("%s: a Reader handled %v, %v; want the pong alone", tc.name, got, err)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 1, 125, 126, 0xFFFF, 0x10000} {
		payload := bytes.Repeat([]byte("ab"), n/2+1)[:n]
		head := map[bool]int{true: 2, false: 4}[n <= 125]
		if n > 0xFFFF {
			head = 10
		}
		f := AppendFrame(nil, 0x80|OpText, payload, &key)
		if f[0] != 0x80|OpText || f[1]&0x80 == 0 || len(f) != head+4+n {
			t.Fatalf("%d bytes: header % x, length %d", n, f[:2], len(f))
		}
		if !bytes.Equal(f[head:head+4], key[:]) {
			t.Fatalf("%d bytes: mask key % x", n, f[head:head+4])
		}
		got := f[head+4:]
		for i := range got { // by hand: the frame was masked with unmask
			got[i] ^= key[i&3]
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("%d bytes: unmasked payload differs", n)
		}
		plain := AppendFrame(nil, 0x80|OpText, payload, nil)
		if plain[1]&0x80 != 0 || len(plain) != head+n || !bytes.Equal(plain[head:], payload) {
			t.Fatalf("%d bytes: unmasked frame header % x, length %d", n, plain[:2], len(plain))
		}
	}
}

// TestReaderRestsAndResets: a Reader is Resting only when it holds nothing
// the next Feed needs, and a Reset one is as good as new, whatever it held.
func TestReaderRestsAndResets(t *testing.T) {
	r := NewReader(testLimit)
	if !r.Resting() {
		t.Fatal("a new Reader is not resting")
	}
	for _, tc := range []struct {
		name  string
		input []byte
	}{
		{"part of a frame", frame(0x81, "hello")[:3]},
		{"a fragment", frame(0x01, "hel")},
		{"an empty fragment", frame(0x01, "")},
		{"a protocol error", frame(0x83, "x")},
	} {
		r.Reset(testLimit)
		feed(r, tc.input)
		if r.Resting() {
			t.Errorf("holding %s: resting", tc.name)
		}
		r.Reset(testLimit)
		got, err := feed(r, frame(0x81, "whole"))
		if err != nil || len(got) != 1 || got[0].payload != "whole" || !r.Resting() {
			t.Errorf("after %s and a Reset: handled %v, error %v, resting %v", tc.name, got, err, r.Resting())
		}
	}
	r.Reset(4)
	if _, err := feed(r, frame(0x81, "hello")); err == nil {
		t.Error("Reset(4) then 5 bytes: no error, want the new limit to apply")
	}
}
