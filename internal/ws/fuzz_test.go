package ws

import (
	"slices"
	"strings"
	"testing"
)

// FuzzReader feeds its input whole and in two pieces cut at a fuzzed point:
// neither may panic, and both must hand over the same messages, end with the
// same error and hold the same bytes.
func FuzzReader(f *testing.F) {
	seeds := [][]byte{
		frame(0x81, "hello"),
		frame(0x82, "\x00\xff"),
		frame(0x81, strings.Repeat("x", 300)),
		encodeFrame(0x81, []byte("hi"), 8, &testKey),
		join(frame(0x01, "caf\xc3"), frame(0x89, "ping"), frame(0x80, "\xa9")),
		join(frame(0x02, "a"), frame(0x00, ""), frame(0x8A, ""), frame(0x80, "b")),
		frame(0x88, closePayload(1000, "bye")),
		frame(0x88, ""),
		join(frame(0x81, "a"), frame(0x81, "b"), frame(0x81, "c")[:5]),
		encodeFrame(0x81, []byte("unmasked"), 0, nil),
		frame(0xC1, "rsv"),
		frame(0x83, ""),
		frame(0x09, ""),
		frame(0x80, "x"),
		join(frame(0x01, "a"), frame(0x81, "b")),
		{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
		frame(0x81, strings.Repeat("x", fuzzLimit+1)),
		frame(0x81, "\xff"),
		frame(0x88, "\x03"),
		frame(0x88, closePayload(1005, "")),
		frame(0x88, closePayload(1000, "\xff")),
	}
	for _, seed := range seeds {
		f.Add(seed, uint(len(seed)/2))
	}
	f.Fuzz(func(t *testing.T, input []byte, cut uint) {
		checkCutDoesNotMatter(t, input, cut, func() *Reader { return NewReader(fuzzLimit) })
	})
}

// checkCutDoesNotMatter feeds input to a Reader from newReader whole, and to
// another cut in two at cut (modulo its length): neither may panic, and both
// must hand over the same messages, end with the same error and hold the
// same bytes. It returns the messages.
func checkCutDoesNotMatter(t *testing.T, input []byte, cut uint, newReader func() *Reader) []message {
	at := int(cut % uint(len(input)+1))
	whole := newReader()
	wantMessages, wantErr := feed(whole, slices.Clone(input))
	pieces := newReader()
	gotMessages, gotErr := feed(pieces, slices.Clone(input[:at]), slices.Clone(input[at:]))
	if !slices.Equal(gotMessages, wantMessages) {
		t.Fatalf("cut at %d: handled %v, whole %v", at, gotMessages, wantMessages)
	}
	if errorText(gotErr) != errorText(wantErr) {
		t.Fatalf("cut at %d: error %v, whole %v", at, gotErr, wantErr)
	}
	if gotErr == nil && pieces.Buffered() != whole.Buffered() {
		t.Fatalf("cut at %d: %d bytes held, whole %d", at, pieces.Buffered(), whole.Buffered())
	}
	if wantErr != nil && closeCode(wantErr) <= 0 {
		t.Fatalf("error %v is not a *CloseError", wantErr)
	}
	if IsPong(input) && (wantErr != nil || len(wantMessages) != 1 || wantMessages[0].op != OpPong || whole.Buffered() != 0) {
		t.Fatalf("IsPong, but a Reader handled %v, %v, holding %d bytes", wantMessages, wantErr, whole.Buffered())
	}
	return wantMessages
}

// fuzzLimit is small, so that the fuzzer finds messages too big.
const fuzzLimit = 200

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
