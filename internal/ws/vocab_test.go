package ws

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestServerFrames(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 0xFFFF, 0x10000} {
		payload := bytes.Repeat([]byte("x"), n)
		want := encodeFrame(FinBit|OpText, payload, 0, nil)
		if got := TextFrame(payload); !bytes.Equal(got, want) {
			t.Errorf("TextFrame of %d bytes: % x…, want % x…", n, got[:min(len(got), 10)], want[:min(len(want), 10)])
		}
		header := want[:len(want)-n]
		if got := AppendHeader([]byte("a"), FinBit|OpText, n); string(got) != "a"+string(header) {
			t.Errorf("AppendHeader after \"a\" for %d bytes: % x, want 61 % x", n, got, header)
		}
	}
	long := bytes.Repeat([]byte("p"), 200)
	for _, tc := range []struct {
		name      string
		got, want []byte
	}{
		{"ping", PingFrame(), []byte{0x89, 0}},
		{"pong", ControlFrame(OpPong, []byte("hi")), encodeFrame(0x8A, []byte("hi"), 0, nil)},
		{"long pong", ControlFrame(OpPong, long), encodeFrame(0x8A, long[:125], 0, nil)},
		{"close", CloseFrame(CloseGoingAway, "bye"), encodeFrame(0x88, []byte(closePayload(1001, "bye")), 0, nil)},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s frame: % x, want % x", tc.name, tc.got, tc.want)
		}
	}
}

func TestPingFrameIsShared(t *testing.T) {
	b := append(PingFrame(), 'x')
	b[0] = 0
	if got := PingFrame(); !bytes.Equal(got, []byte{0x89, 0}) {
		t.Errorf("after a caller appended to it: % x", got)
	}
}

func TestClosePayload(t *testing.T) {
	for _, tc := range []struct {
		name       string
		reason     string
		wantReason string
	}{
		{"empty", "", ""},
		{"short", "slow consumer", "slow consumer"},
		{"123 bytes", strings.Repeat("a", 123), strings.Repeat("a", 123)},
		{"124 bytes", strings.Repeat("a", 124), strings.Repeat("a", 123)},
		// 'é' is 2 bytes: the 62nd would end at byte 124.
		{"cut before a character", strings.Repeat("é", 70), strings.Repeat("é", 61)},
		{"cut after a character", "a" + strings.Repeat("é", 70), "a" + strings.Repeat("é", 61)},
		{"4-byte characters", strings.Repeat("😀", 40), strings.Repeat("😀", 30)},
	} {
		payload := ClosePayload(4009, tc.reason)
		code, reason := ParseClose(payload)
		if code != 4009 || reason != tc.wantReason || len(payload) > 125 || !utf8.ValidString(reason) {
			t.Errorf("%s: ClosePayload(4009, %d bytes) parses as %d and %d bytes (%d in all), want 4009 and %d bytes",
				tc.name, len(tc.reason), code, len(reason), len(payload), len(tc.wantReason))
		}
	}
	if code, reason := ParseClose(nil); code != CloseNoStatus || reason != "" {
		t.Errorf("ParseClose(nil) = %d, %q; want %d, \"\"", code, reason, CloseNoStatus)
	}
	if code, reason := ParseClose([]byte{0x03}); code != CloseNoStatus || reason != "" {
		t.Errorf("ParseClose of 1 byte = %d, %q; want %d, \"\"", code, reason, CloseNoStatus)
	}
}
