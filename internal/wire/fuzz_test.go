package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"unicode/utf8"
)

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"hello",
		"",
		" ",
		"{hello",
		"{",
		"\xff",
		`{"type":"ping"}`,
		`{"type":"ping","id":"p1"}`,
		`{"type":"ping","id":12}`,
		`{"type":"ping","id":null}`,
		`{"type":"ping","id":true}`,
		`{"type":"ping","id":"0123456789012345678901234567890123456789012345678901234567890123456789"}`,
		`{"type":"chat","room":"lobby","content":"hi","id":"c1"}`,
		`{"type":"chat","content":"x","data":{"a":[1,2,{"b":null}]}}`,
		"{\"type\":\"chat\",\"content\":\"x\",\"data\":{\n \"a\" : 1\n}}",
		`{"type":"chat","content":5}`,
		`{"type":"chat","content":"\u2028\ud800"}`,
		`{"type":"join","room":"r","since":0}`,
		`{"type":"join","room":"r","since":-1}`,
		`{"type":"join","room":"r","since":18446744073709551616}`,
		`{"type":"leave","room":"r"}`,
		`{"type":"direct","to":"bob","content":"psst"}`,
		`{"type":"typing","room":"r"}`,
		`{"type":"presence","room":"r"}`,
		`{"type":"history","room":"r","before":5,"limit":10}`,
		`{"type":"history","room":"r","limit":0}`,
		`{"type":"refresh","token":"a.b.c"}`,
		`{"type":1,"id":"x"}`,
		`{"TYPE":"chat","Content":"case"}`,
		`[{"type":"chat"}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		input := string(frame)
		in, err := Decode(frame)
		if string(frame) != input {
			t.Fatalf("Decode modified its input: %q became %q", input, frame)
		}
		if !utf8.Valid(frame) {
			if !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("Decode(%q): error %v, want ErrInvalidUTF8", frame, err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("Decode(%q): error %v wraps neither ErrBadRequest nor ErrInvalidUTF8", frame, err)
			}
		}
		if in.ID != nil {
			if !json.Valid(in.ID) {
				t.Fatalf("Decode(%q): ID %q is not valid JSON", frame, in.ID)
			}
			if checkID(in.ID) != nil {
				t.Fatalf("Decode(%q): returned ID %q that checkID refuses", frame, in.ID)
			}
			// The id is echoed in ack and error frames, which must stay valid.
			if ack := AppendAck(nil, in.ID, 1, 1); !json.Valid(ack) {
				t.Fatalf("Decode(%q): ack echoing ID %q is not valid JSON: %s", frame, in.ID, ack)
			}
			if e := AppendError(nil, "bad_request", "x", in.ID); !json.Valid(e) {
				t.Fatalf("Decode(%q): error echoing ID %q is not valid JSON: %s", frame, in.ID, e)
			}
		}
		if err != nil {
			return
		}
		if in.PlainText {
			if in.Type != "chat" || in.Content != input {
				t.Fatalf("Decode(%q) plain text: Type %q Content %q, want chat and the whole frame", frame, in.Type, in.Content)
			}
		}
		if in.Data != nil && !json.Valid(in.Data) {
			t.Fatalf("Decode(%q): Data %q is not valid JSON", frame, in.Data)
		}
		if in.Limit < 0 {
			t.Fatalf("Decode(%q): Limit %d is negative", frame, in.Limit)
		}
		// What a client sent is delivered as one frame on one line.
		out := AppendChat(nil, Chat{Room: in.Room, Username: in.To, Content: in.Content, Data: in.Data, ID: in.Token})
		if !json.Valid(out) || bytes.ContainsAny(out, "\n\r") {
			t.Fatalf("Decode(%q) then AppendChat: %q is not one valid JSON line", frame, out)
		}
		var back map[string]any
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("AppendChat output %q: %v", out, err)
		}
		if back["content"] != in.Content {
			t.Fatalf("Decode(%q) then AppendChat: content %q, want %q", frame, back["content"], in.Content)
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, seed := range []string{"", "plain", `"quoted"`, `back\slash`, "\x00\x1f\n\r\t", "é🎉", "\u2028\u2029", "\xff\xc3", "\xed\xa0\x80", "\ufffd"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		if !json.Valid(out) {
			t.Fatalf("AppendString(%q) = %q is not valid JSON", s, out)
		}
		if bytes.ContainsAny(out, "\n\r") || bytes.Contains(out, []byte("\u2028")) || bytes.Contains(out, []byte("\u2029")) {
			t.Fatalf("AppendString(%q) = %q holds a raw line terminator", s, out)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("AppendString(%q) = %q: %v", s, out, err)
		}
		if utf8.ValidString(s) {
			if back != s {
				t.Fatalf("AppendString(%q) = %q reads back as %q", s, out, back)
			}
			return
		}
		if want := stdlibRoundTrip(t, s); back != want {
			t.Fatalf("AppendString(%q) = %q reads back as %q; encoding/json gives %q", s, out, back, want)
		}
	})
}

// FuzzAppendCompact checks the data compaction against json.Compact.
func FuzzAppendCompact(f *testing.F) {
	for _, seed := range []string{`{}`, "{ \"a\" :\n [1, 2] }", `"x \" y"`, `{"k":"\\","z":[ 1 ]}`, "[\t\r\n]", `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var want bytes.Buffer
		if err := json.Compact(&want, data); err != nil {
			t.Fatalf("json.Compact(%q): %v", data, err)
		}
		if got := appendCompact(nil, data); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("appendCompact(%q) = %q, json.Compact gives %q", data, got, want.Bytes())
		}
	})
}

// FuzzDecodeFlat: wherever decodeFlat takes a frame, it fills the fields
// exactly as json.Unmarshal does, and json.Unmarshal takes it too.
func FuzzDecodeFlat(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"type":"chat","room":"lobby","content":"hi","id":"c1"}`,
		`{"type":"chat","content":"a","content":"b"}`,
		` { "type" : "join" , "room":"r", "since": 12 } `,
		`{"type":"history","before":-1,"limit":1.5e3}`,
		`{"Type":"chat"}`,
		`{"ROOM":"x","type":"chat"}`,
		`{"other":"x","type":"chat","n":-0.5E+2}`,
		`{"type":5}`,
		`{"type":"chat","content":"tab\tquote\""}`,
		`{"type":"chat","data":{"a":1}}`,
		`{"type":"chat","id":null}`,
		`{"type":"ping","id":"é🎉"}`,
		`{"type":5,"type":"ping","id":"x1"}`,
		`{"room":1,"room":"r","type":"chat","data":"d"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		obj = bytes.TrimSpace(obj)
		if !utf8.Valid(obj) || !json.Valid(obj) || len(obj) == 0 || obj[0] != '{' {
			return // Decode takes only these to decodeFlat
		}
		var flat inbound
		scratch := bytes.Clone(obj)
		if !decodeFlat(scratch, &flat) {
			return
		}
		got, id, data := fmt.Sprintf("%+v", describe(flat)), string(flat.ID), string(flat.Data)
		clear(scratch) // the id and data, which Decode keeps, must not change with it
		if string(flat.ID) != id || string(flat.Data) != data {
			t.Fatalf("decodeFlat(%q): id %q and data %q alias its input", obj, id, data)
		}
		var want inbound
		if err := json.Unmarshal(obj, &want); err != nil {
			t.Fatalf("decodeFlat took %q, which json.Unmarshal refuses: %v", obj, err)
		}
		if wanted := fmt.Sprintf("%+v", describe(want)); got != wanted {
			t.Fatalf("decodeFlat(%q) = %s; json.Unmarshal gives %s", obj, got, wanted)
		}
	})
}

// describe shows an inbound's fields by value, for comparing two.
func describe(raw inbound) []string {
	str := func(s *string) string {
		if s == nil {
			return "<nil>"
		}
		return strconv.Quote(*s)
	}
	rawText := func(r json.RawMessage) string {
		if r == nil {
			return "<nil>"
		}
		return string(r)
	}
	return []string{str(raw.Type), str(raw.Room), str(raw.To), str(raw.Token), rawText(raw.ID),
		rawText(raw.Content), rawText(raw.Data), rawText(raw.Since), rawText(raw.Before), rawText(raw.Limit)}
}
