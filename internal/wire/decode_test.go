package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestDecodePlainText(t *testing.T) {
	for _, frame := range []string{
		"hello",
		"",
		"   ",
		" hello \n",
		"{hello",
		"{",
		`{"type":"chat"`,
		`{"type":"chat"} trailing`,
		`{"a":1}{"b":2}`,
		`[1,2,3]`,
		`"a JSON string"`,
		`42`,
		`null`,
		"héllo wörld ✓ 🎉",
	} {
		in, err := Decode([]byte(frame))
		if err != nil {
			t.Errorf("Decode(%q): error %v, want plain-text chat", frame, err)
			continue
		}
		if !in.PlainText || in.Type != "chat" || in.Content != frame {
			t.Errorf("Decode(%q) = {Type:%q PlainText:%v Content:%q}, want {Type:\"chat\" PlainText:true Content:%q}",
				frame, in.Type, in.PlainText, in.Content, frame)
		}
		if in.ID != nil || in.Room != "" || in.Data != nil {
			t.Errorf("Decode(%q): plain text set ID %q, Room %q, Data %q", frame, in.ID, in.Room, in.Data)
		}
	}
}

func TestDecodeFields(t *testing.T) {
	tests := []struct {
		frame string
		want  Inbound
	}{
		{`{"type":"ping"}`, Inbound{Type: "ping"}},
		{" \t\n{\"type\":\"ping\"}\r\n ", Inbound{Type: "ping"}},
		{`{"type":"chat","room":"lobby","content":"hi"}`, Inbound{Type: "chat", Room: "lobby", Content: "hi"}},
		{`{"type":"chat","content":"line\nbreak \"quoted\" \u00e9 \ud83c\udf89"}`, Inbound{Type: "chat", Content: "line\nbreak \"quoted\" é 🎉"}},
		{`{"type":"chat","content":"{not json}"}`, Inbound{Type: "chat", Content: "{not json}"}},
		{`{"type":"chat","content":"x","data":{"a":[1,2]}}`, Inbound{Type: "chat", Content: "x", Data: json.RawMessage(`{"a":[1,2]}`)}},
		{`{"type":"chat","data":"s"}`, Inbound{Type: "chat", Data: json.RawMessage(`"s"`)}},
		{`{"type":"chat","data":0}`, Inbound{Type: "chat", Data: json.RawMessage(`0`)}},
		{`{"type":"join","room":"r","since":0}`, Inbound{Type: "join", Room: "r", Since: ptr[uint64](0)}},
		{`{"type":"join","room":"r","since":18446744073709551615}`, Inbound{Type: "join", Room: "r", Since: ptr[uint64](18446744073709551615)}},
		{`{"type":"leave","room":"r"}`, Inbound{Type: "leave", Room: "r"}},
		{`{"type":"direct","to":"bob","content":"psst"}`, Inbound{Type: "direct", To: "bob", Content: "psst"}},
		{`{"type":"history","room":"r","before":10,"limit":5}`, Inbound{Type: "history", Room: "r", Before: 10, Limit: 5}},
		{`{"type":"history","room":"r","limit":100000}`, Inbound{Type: "history", Room: "r", Limit: 100000}},
		{`{"type":"refresh","token":"a.b.c"}`, Inbound{Type: "refresh", Token: "a.b.c"}},
		{`{"type":"whatever"}`, Inbound{Type: "whatever"}},
		{`{"type":""}`, Inbound{Type: ""}},
		{`{"type":"ping","unknown":{"x":[1]}}`, Inbound{Type: "ping"}},
		// ids: strings and numbers, echoed verbatim.
		{`{"type":"ping","id":"abc"}`, Inbound{Type: "ping", ID: json.RawMessage(`"abc"`)}},
		{`{"type":"ping","id":""}`, Inbound{Type: "ping", ID: json.RawMessage(`""`)}},
		{`{"type":"ping","id":42}`, Inbound{Type: "ping", ID: json.RawMessage(`42`)}},
		{`{"type":"ping","id":-1.5e3}`, Inbound{Type: "ping", ID: json.RawMessage(`-1.5e3`)}},
		{`{"type":"ping","id":"\u00e9"}`, Inbound{Type: "ping", ID: json.RawMessage(`"\u00e9"`)}},
		{`{"type":"ping","id":"` + strings.Repeat("x", MaxIDLength) + `"}`, Inbound{Type: "ping", ID: json.RawMessage(`"` + strings.Repeat("x", MaxIDLength) + `"`)}},
		{`{"type":"ping","id":"` + strings.Repeat("é", MaxIDLength) + `"}`, Inbound{Type: "ping", ID: json.RawMessage(`"` + strings.Repeat("é", MaxIDLength) + `"`)}},
		{`{"type":"ping","id":` + strings.Repeat("9", MaxIDLength) + `}`, Inbound{Type: "ping", ID: json.RawMessage(strings.Repeat("9", MaxIDLength))}},
		// null means absent.
		{`{"type":"chat","id":null,"room":null,"to":null,"token":null,"content":null,"data":null,"since":null,"before":null,"limit":null}`, Inbound{Type: "chat"}},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.frame))
		if err != nil {
			t.Errorf("Decode(%s): unexpected error %v", tt.frame, err)
			continue
		}
		if !equalInbound(got, tt.want) {
			t.Errorf("Decode(%s)\n got %s\nwant %s", tt.frame, showInbound(got), showInbound(tt.want))
		}
	}
}

func TestDecodeBadRequest(t *testing.T) {
	long := strings.Repeat("x", MaxIDLength+1)
	tests := []struct {
		frame  string
		wantID string // the id expected to be echoed, "" for none
	}{
		{`{}`, ""},
		{`{"room":"r"}`, ""},
		{`{"type":null}`, ""},
		{`{"type":1}`, ""},
		{`{"type":["chat"]}`, ""},
		{`{"type":"chat","content":5}`, ""},
		{`{"type":"chat","content":true}`, ""},
		{`{"type":"chat","content":{"a":1}}`, ""},
		{`{"type":"chat","content":["a"]}`, ""},
		{`{"type":"chat","room":1}`, ""},
		{`{"type":"direct","to":false}`, ""},
		{`{"type":"refresh","token":{}}`, ""},
		{`{"type":"join","room":"r","since":-1}`, ""},
		{`{"type":"join","room":"r","since":1.5}`, ""},
		{`{"type":"join","room":"r","since":"3"}`, ""},
		{`{"type":"join","room":"r","since":18446744073709551616}`, ""},
		{`{"type":"history","room":"r","before":-1}`, ""},
		{`{"type":"history","room":"r","before":"1"}`, ""},
		{`{"type":"history","room":"r","limit":0}`, ""},
		{`{"type":"history","room":"r","limit":-5}`, ""},
		{`{"type":"history","room":"r","limit":2.5}`, ""},
		{`{"type":"history","room":"r","limit":"10"}`, ""},
		{`{"type":"history","room":"r","limit":1e2}`, ""},
		// Bad ids.
		{`{"type":"ping","id":"` + long + `"}`, ""},
		{`{"type":"ping","id":"` + strings.Repeat("é", MaxIDLength+1) + `"}`, ""},
		{`{"type":"ping","id":` + strings.Repeat("9", MaxIDLength+1) + `}`, ""},
		{`{"type":"ping","id":true}`, ""},
		{`{"type":"ping","id":false}`, ""},
		{`{"type":"ping","id":{"a":1}}`, ""},
		{`{"type":"ping","id":[1]}`, ""},
		// A good id is echoed even when a later check fails.
		{`{"id":"a1"}`, `"a1"`},
		{`{"id":7,"type":"chat","content":5}`, `7`},
		{`{"type":"chat","content":{},"id":"a2"}`, `"a2"`},
		{`{"id":"a3","type":"join","room":"r","since":-1}`, `"a3"`},
		{`{"id":"a4","type":"history","room":"r","limit":0}`, `"a4"`},
		{`{"id":"a5","type":"history","room":"r","before":"x"}`, `"a5"`},
		// …and when another field has the wrong JSON type.
		{`{"id":"a6","type":5}`, `"a6"`},
		{`{"type":"chat","room":["r"],"id":"a7"}`, `"a7"`},
	}
	for _, tt := range tests {
		in, err := Decode([]byte(tt.frame))
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("Decode(%s): error %v, want ErrBadRequest", tt.frame, err)
		}
		if string(in.ID) != tt.wantID {
			t.Errorf("Decode(%s): ID %q, want %q", tt.frame, in.ID, tt.wantID)
		}
	}
}

func TestDecodeErrorMessagesHideGoTypes(t *testing.T) {
	for _, frame := range []string{`{"type":1}`, `{"type":"chat","room":{}}`, `{"type":"chat","content":5}`} {
		_, err := Decode([]byte(frame))
		if err == nil {
			t.Errorf("Decode(%s): no error", frame)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "Go ") || strings.Contains(msg, "*string") || strings.Contains(msg, "wire.") {
			t.Errorf("Decode(%s): error %q names Go types", frame, msg)
		}
	}
}

func TestDecodeInvalidUTF8(t *testing.T) {
	for _, frame := range []string{
		"\xff",
		"hello \xc3",
		"\xed\xa0\x80", // an encoded surrogate
		`{"type":"chat","content":"` + "\xfe" + `"}`,
		`{"type":"chat","id":"` + "\x80" + `","content":"x"}`,
	} {
		in, err := Decode([]byte(frame))
		if !errors.Is(err, ErrInvalidUTF8) {
			t.Errorf("Decode(%q): error %v, want ErrInvalidUTF8", frame, err)
		}
		if errors.Is(err, ErrBadRequest) {
			t.Errorf("Decode(%q): error %v also wraps ErrBadRequest", frame, err)
		}
		if in.Content != "" || in.ID != nil {
			t.Errorf("Decode(%q): returned Content %q, ID %q with the error", frame, in.Content, in.ID)
		}
	}
}

func TestDecodeDoesNotAliasFrame(t *testing.T) {
	for _, tc := range []struct{ frame, id, data string }{
		{`{"type":"chat","id":"abc","content":"x","data":{"k":"v"}}`, `"abc"`, `{"k":"v"}`},
		{`{"type":"chat","id":"abc","content":"x","data":"ORIGINAL"}`, `"abc"`, `"ORIGINAL"`}, // flat
		{`{"type":"chat","id":7,"content":"x","data":12345678}`, `7`, `12345678`},             // flat
	} {
		frame := []byte(tc.frame)
		in, err := Decode(frame)
		if err != nil {
			t.Fatalf("Decode(%s): %v", frame, err)
		}
		for i := range frame {
			frame[i] = 'z'
		}
		if string(in.ID) != tc.id || string(in.Data) != tc.data {
			t.Errorf("%s: after overwriting the frame, ID = %q, Data = %q; want %s, %s", tc.frame, in.ID, in.Data, tc.id, tc.data)
		}
	}
}

func equalInbound(a, b Inbound) bool {
	sinceEqual := (a.Since == nil) == (b.Since == nil) && (a.Since == nil || *a.Since == *b.Since)
	return a.Type == b.Type && string(a.ID) == string(b.ID) && (a.ID == nil) == (b.ID == nil) &&
		a.Room == b.Room && a.To == b.To && a.Token == b.Token && a.Content == b.Content &&
		string(a.Data) == string(b.Data) && (a.Data == nil) == (b.Data == nil) &&
		sinceEqual && a.Before == b.Before && a.Limit == b.Limit && a.PlainText == b.PlainText
}

func showInbound(in Inbound) string {
	since := "nil"
	if in.Since != nil {
		since = fmt.Sprint(*in.Since)
	}
	return fmt.Sprintf("{Type:%q ID:%q Room:%q To:%q Token:%q Content:%q Data:%q Since:%s Before:%d Limit:%d PlainText:%v}",
		in.Type, in.ID, in.Room, in.To, in.Token, in.Content, in.Data, since, in.Before, in.Limit, in.PlainText)
}

// BenchmarkDecodeChat decodes the chat frame a client sends most: flat and
// plain, as decodeFlat takes it, and with an escape, as json.Unmarshal
// does.
func BenchmarkDecodeChat(b *testing.B) {
	for name, frame := range map[string]string{
		"plain":   `{"type":"chat","room":"lobby","content":"hello, everyone in the room, how are you all today?","id":"c1"}`,
		"escaped": `{"type":"chat","room":"lobby","content":"hello, \"everyone\" in the room, how are you all today?","id":"c1"}`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := Decode([]byte(frame)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestDecodeChatAllocs(t *testing.T) {
	frame := []byte(`{"type":"chat","room":"lobby","content":"hello, everyone","id":"c1"}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Decode(frame); err != nil {
			t.Fatal(err)
		}
	})
	// The room (its string and the pointer that says it was there), the
	// content and the id, copied out of the frame; the type is shared.
	if allocs > 4 {
		t.Errorf("Decode of a plain chat: %v allocations, want at most 4", allocs)
	}
}
