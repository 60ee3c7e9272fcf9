package partyline

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestAdvanceDropsWrittenBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []string
	}{
		{0, []string{"abc", "de", "f"}},
		{2, []string{"c", "de", "f"}},
		{3, []string{"de", "f"}},
		{4, []string{"e", "f"}},
		{5, []string{"f"}},
		{6, []string{}},
	} {
		c := &Conn{pending: [][]byte{[]byte("abc"), []byte("de"), []byte("f")}}
		c.advance(tc.n)
		got := []string{}
		for _, f := range c.pending {
			got = append(got, string(f))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("advance(%d) left %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestPrepareMergesInTurns feeds the writer more queued text than one merge
// buffer holds: each write takes one merged frame, and once it is written
// the next frames are merged in the same buffer, until every payload has
// gone, in order, in a handful of frames.
func TestPrepareMergesInTurns(t *testing.T) {
	c := &Conn{}
	var want []string
	for i := range 100 {
		s := strings.Repeat(string(rune('a'+i%26)), 2000)
		c.pending = append(c.pending, textFrame([]byte(s)))
		want = append(want, s)
	}
	c.pending = append(c.pending, pingFrame)
	var got []string
	writes, pings := 0, 0
	for len(c.pending) > 0 {
		k := c.prepare()
		writes++
		for _, f := range c.pending[:k] {
			first, payload := parseServerFrame(t, f)
			if first == finBit|opPing {
				pings++
				continue
			}
			got = append(got, strings.Split(string(payload), "\n")...)
		}
		c.advance(totalLen(c.pending[:k])) // the socket took it all
	}
	c.clearPending()
	if !slices.Equal(got, want) || pings != 1 {
		t.Fatalf("%d payloads and %d pings written, want the %d payloads in order and the ping", len(got), pings, len(want))
	}
	if writes > 5 { // 200 KB in 64 KB buffers
		t.Errorf("%d writes, want 4 or so", writes)
	}
}

// TestPrepareLeavesACutFrameAlone checks that the tail of a frame cut by a
// short write is never taken for a frame to merge, even when its bytes
// look like a text frame's header.
func TestPrepareLeavesACutFrameAlone(t *testing.T) {
	c := &Conn{}
	tail := textFrame([]byte("xx\x81\x02ab"))[4:] // "\x81\x02ab": a text frame's shape
	c.pending = [][]byte{textFrame([]byte("xx\x81\x02ab")), textFrame([]byte("c")), textFrame([]byte("d"))}
	c.advance(4)
	if !c.cut || !bytes.Equal(c.pending[0], tail) {
		t.Fatalf("after a 4-byte write: cut %v, head %q; want the cut tail %q", c.cut, c.pending[0], tail)
	}
	k := c.prepare()
	if k != 2 || !bytes.Equal(c.pending[0], tail) || describe(t, c.pending[1:2]) != "text:c|d" {
		t.Fatalf("prepare: %d frames, %q; want the tail then c|d merged", k, c.pending)
	}
	c.advance(2) // part of the tail only
	if !c.cut || c.inBuffer != 2 {
		t.Fatalf("after part of the tail: cut %v, in buffer %d; want cut and 2", c.cut, c.inBuffer)
	}
	c.advance(len(c.pending[0]) + 1)
	if c.cut != true || c.inBuffer != 1 {
		t.Fatalf("after the tail and a byte: cut %v, in buffer %d; want cut and 1", c.cut, c.inBuffer)
	}
	c.advance(len(c.pending[0]))
	if len(c.pending) != 0 || c.cut || c.inBuffer != 0 {
		t.Fatalf("all written: %q, cut %v, in buffer %d", c.pending, c.cut, c.inBuffer)
	}
	c.clearPending()
}
