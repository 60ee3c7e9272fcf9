package ws

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unicode/utf8"
)

// TestReaderProperty frames random messages as a client would (text and
// binary, whole and fragmented, with pings and pongs between the fragments,
// lengths in every encoding) and feeds the stream in random pieces: the
// messages must come out whole, identical and in order.
func TestReaderProperty(t *testing.T) {
	testReaderProperty(t, false)
}

// testReaderProperty is TestReaderProperty, with compressed messages among
// the others when deflate is true.
func testReaderProperty(t *testing.T, deflate bool) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for round := range 200 {
		stream, want := randomStream(rng, deflate)
		for _, pieceSize := range []int{1, 1 + rng.IntN(16), 1 + rng.IntN(len(stream)+1), len(stream)} {
			r := NewReader(testLimit)
			if deflate {
				r.EnableDeflate()
			}
			got, err := feed(r, randomPieces(rng, stream, pieceSize)...)
			if err != nil {
				t.Fatalf("round %d, pieces up to %d bytes: %v", round, pieceSize, err)
			}
			if i := firstDifference(got, want); i >= 0 {
				t.Fatalf("round %d, pieces up to %d bytes: message %d of %d is %.60v, want %.60v",
					round, pieceSize, i, len(want), at(got, i), at(want, i))
			}
			if r.buf != nil {
				t.Fatalf("round %d, pieces up to %d bytes: %d bytes held at the end", round, pieceSize, len(r.buf))
			}
		}
	}
}

// randomStream returns the frames of a few random messages and what a Reader
// must hand over for them. With deflate, about half the messages are sent
// compressed, at a random level.
func randomStream(rng *rand.Rand, deflate bool) (stream []byte, want []message) {
	for range 1 + rng.IntN(8) {
		op, payload := OpBinary, randomBytes(rng, randomLength(rng))
		if rng.IntN(2) == 0 {
			op, payload = OpText, randomText(rng, len(payload))
		}
		opByte, sent := op, payload // the first frame's opcode and RSV1, and its bytes
		if deflate && rng.IntN(2) == 0 {
			opByte, sent = op|Rsv1Bit, clientCompress(payload, randomLevel(rng))
		}
		fragments := 1 + rng.IntN(4)
		rest := sent
		for i := range fragments {
			n := len(rest)
			if i < fragments-1 {
				n = rng.IntN(len(rest) + 1) // may cut a rune: only the whole must be UTF-8
			}
			first := OpContinuation
			if i == 0 {
				first = opByte
			}
			if i == fragments-1 {
				first |= 0x80
			}
			stream = append(stream, randomFrame(rng, first, rest[:n])...)
			rest = rest[n:]
			if i == fragments-1 {
				want = append(want, message{op, string(payload)})
			}
			if rng.IntN(3) == 0 {
				control := OpPing + byte(rng.IntN(2))
				body := randomBytes(rng, rng.IntN(126))
				stream = append(stream, randomFrame(rng, 0x80|control, body)...)
				want = append(want, message{control, string(body)})
			}
		}
	}
	return stream, want
}

// randomLength is mostly short, sometimes long enough for a 16-bit or a
// 64-bit length.
func randomLength(rng *rand.Rand) int {
	switch rng.IntN(10) {
	case 0:
		return 0
	case 1:
		return 126 + rng.IntN(2000)
	case 2:
		if rng.IntN(5) == 0 {
			return 65536 + rng.IntN(10000)
		}
	}
	return rng.IntN(126)
}

// randomFrame masks payload with a random key and, now and then, encodes
// its length with more bytes than it needs.
func randomFrame(rng *rand.Rand, first byte, payload []byte) []byte {
	lengthBytes := 0
	switch rng.IntN(5) {
	case 0:
		lengthBytes = 8
	case 1:
		if len(payload) <= 0xFFFF {
			lengthBytes = 2
		}
	}
	key := [4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
	return encodeFrame(first, payload, lengthBytes, &key)
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// randomText is about n bytes of UTF-8, runes of one to four bytes.
func randomText(rng *rand.Rand, n int) []byte {
	runes := []rune{'a', 'z', ' ', 'é', 'ß', '€', '中', '😀', utf8.MaxRune}
	var b []byte
	for len(b) < n {
		b = utf8.AppendRune(b, runes[rng.IntN(len(runes))])
	}
	return b
}

// randomPieces cuts a copy of stream into pieces of 1 to max bytes.
func randomPieces(rng *rand.Rand, stream []byte, max int) [][]byte {
	stream = slices.Clone(stream)
	var pieces [][]byte
	for len(stream) > 0 {
		n := min(1+rng.IntN(max), len(stream))
		pieces = append(pieces, stream[:n])
		stream = stream[n:]
	}
	return pieces
}

// firstDifference is the index of the first message where got and want
// differ, or -1.
func firstDifference(got, want []message) int {
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			return i
		}
	}
	return -1
}

func at(messages []message, i int) string {
	if i >= len(messages) {
		return "nothing"
	}
	return messages[i].String()
}
