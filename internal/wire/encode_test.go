package wire

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// decodeFrame checks that frame is one valid JSON object on one line and
// returns it, numbers as json.Number so that uint64 seqs compare exactly.
func decodeFrame(t *testing.T, frame []byte) map[string]any {
	t.Helper()
	if !json.Valid(frame) {
		t.Fatalf("frame is not valid JSON: %s", frame)
	}
	if bytes.ContainsAny(frame, "\n\r") {
		t.Errorf("frame contains a line break, which splits a batch: %q", frame)
	}
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	return m
}

type obj = map[string]any
type list = []any

func num(s string) json.Number { return json.Number(s) }

func TestAppendFrames(t *testing.T) {
	chat := Chat{Room: "lobby", Seq: 7, ID: "m1", Username: "alice", Content: "hi \"all\"", Timestamp: 1700000000123}
	chatWant := obj{"type": "chat", "room": "lobby", "username": "alice", "content": "hi \"all\"",
		"timestamp": num("1700000000123"), "seq": num("7"), "id": "m1"}
	withData := chat
	withData.Data = json.RawMessage(`{"k":[1,true,null]}`)
	withDataWant := obj{"type": "chat", "room": "lobby", "username": "alice", "content": "hi \"all\"",
		"data":      obj{"k": list{num("1"), true, nil}},
		"timestamp": num("1700000000123"), "seq": num("7"), "id": "m1"}

	tests := []struct {
		name  string
		frame []byte
		want  obj
	}{
		{"chat", AppendChat(nil, chat), chatWant},
		{"chat with data", AppendChat(nil, withData), withDataWant},
		{"chat with spaced data", AppendChat(nil, Chat{Data: json.RawMessage("{\n  \"a b\": [1,\r\n\t2],\n  \"c\": \"x\\\" \\n\"\n}")}),
			obj{"type": "chat", "room": "", "username": "", "content": "", "data": obj{"a b": list{num("1"), num("2")}, "c": "x\" \n"},
				"timestamp": num("0"), "seq": num("0"), "id": ""}},
		{"chat max seq", AppendChat(nil, Chat{Seq: 1<<64 - 1, Timestamp: -1}),
			obj{"type": "chat", "room": "", "username": "", "content": "", "timestamp": num("-1"), "seq": num("18446744073709551615"), "id": ""}},
		{"history", AppendHistory(nil, "lobby", []Chat{chat, withData}),
			obj{"type": "history", "room": "lobby", "messages": list{chatWant, withDataWant}}},
		{"close", AppendClose(nil, 4009, "slow \"consumer\"\n"),
			obj{"type": "close", "code": num("4009"), "reason": "slow \"consumer\"\n"}},
		{"history empty", AppendHistory(nil, "lobby", []Chat{}),
			obj{"type": "history", "room": "lobby", "messages": list{}}},
		{"history nil", AppendHistory(nil, "lobby", nil),
			obj{"type": "history", "room": "lobby", "messages": list{}}},
		{"welcome", AppendWelcome(nil, Welcome{"alice", "s1", []string{"a", "b"}, "partyline/1.0", 16384, ""}),
			obj{"type": "welcome", "username": "alice", "session": "s1", "rooms": list{"a", "b"}, "server": "partyline/1.0", "max_message_size": num("16384")}},
		{"welcome with an epoch", AppendWelcome(nil, Welcome{"alice", "s1", nil, "p", 1, "e1"}),
			obj{"type": "welcome", "username": "alice", "session": "s1", "rooms": list{}, "server": "p", "max_message_size": num("1"), "epoch": "e1"}},
		{"welcome nil rooms", AppendWelcome(nil, Welcome{"alice", "s1", nil, "p", 1, ""}),
			obj{"type": "welcome", "username": "alice", "session": "s1", "rooms": list{}, "server": "p", "max_message_size": num("1")}},
		{"welcome empty rooms", AppendWelcome(nil, Welcome{"alice", "s1", []string{}, "p", 1, ""}),
			obj{"type": "welcome", "username": "alice", "session": "s1", "rooms": list{}, "server": "p", "max_message_size": num("1")}},
		{"joined", AppendJoined(nil, "r", 12, false, false),
			obj{"type": "joined", "room": "r", "seq": num("12")}},
		{"joined recovered", AppendJoined(nil, "r", 12, true, true),
			obj{"type": "joined", "room": "r", "seq": num("12"), "recovered": true}},
		{"joined not recovered", AppendJoined(nil, "r", 0, true, false),
			obj{"type": "joined", "room": "r", "seq": num("0"), "recovered": false}},
		{"left", AppendLeft(nil, "r"), obj{"type": "left", "room": "r"}},
		{"user_joined", AppendPresenceChange(nil, true, "r", "bob", 5),
			obj{"type": "user_joined", "room": "r", "username": "bob", "content": "bob joined the room", "timestamp": num("5")}},
		{"user_left", AppendPresenceChange(nil, false, "r", "bob", 5),
			obj{"type": "user_left", "room": "r", "username": "bob", "content": "bob left the room", "timestamp": num("5")}},
		{"online_users", AppendOnlineUsers(nil, "r", []string{"alice", "bob"}, 2),
			obj{"type": "online_users", "room": "r", "users": list{"alice", "bob"}, "content": "alice,bob", "count": num("2")}},
		{"online_users escaped", AppendOnlineUsers(nil, "r", []string{`a"b`, "c\\d"}, 2),
			obj{"type": "online_users", "room": "r", "users": list{`a"b`, "c\\d"}, "content": `a"b,c\d`, "count": num("2")}},
		{"online_users nil", AppendOnlineUsers(nil, "r", nil, 0),
			obj{"type": "online_users", "room": "r", "users": list{}, "content": "", "count": num("0")}},
		{"online_users count only", AppendOnlineUsers(nil, "r", []string{}, 10000),
			obj{"type": "online_users", "room": "r", "users": list{}, "content": "", "count": num("10000")}},
		{"presence_diff", AppendPresenceDiff(nil, PresenceDiff{Room: "r", Joined: []string{"b", `a"`}, Left: []string{"c"},
			JoinedMore: 3, Count: 812, Timestamp: 5}),
			obj{"type": "presence_diff", "room": "r", "joined": list{"b", `a"`}, "left": list{"c"},
				"joined_more": num("3"), "left_more": num("0"), "count": num("812"), "timestamp": num("5")}},
		{"presence_diff nil lists", AppendPresenceDiff(nil, PresenceDiff{Room: "r", Count: 1}),
			obj{"type": "presence_diff", "room": "r", "joined": list{}, "left": list{},
				"joined_more": num("0"), "left_more": num("0"), "count": num("1"), "timestamp": num("0")}},
		{"direct", AppendDirect(nil, Direct{From: "a", To: "b", Content: "c", Timestamp: 9, ID: "d1"}),
			obj{"type": "direct", "from": "a", "to": "b", "content": "c", "timestamp": num("9"), "id": "d1"}},
		{"direct with data", AppendDirect(nil, Direct{From: "a", To: "b", Data: []byte("[ 1 ,\n 2 ]"), ID: "d2"}),
			obj{"type": "direct", "from": "a", "to": "b", "content": "", "data": list{num("1"), num("2")}, "timestamp": num("0"), "id": "d2"}},
		{"typing", AppendTyping(nil, "r", "alice"), obj{"type": "typing", "room": "r", "username": "alice"}},
		{"ack", AppendAck(nil, []byte(`"x"`), 0, 0), obj{"type": "ack", "id": "x"}},
		{"ack number id", AppendAck(nil, []byte(`-1.5e3`), 0, 0), obj{"type": "ack", "id": num("-1.5e3")}},
		{"ack chat", AppendAck(nil, []byte(`3`), 4, 5), obj{"type": "ack", "id": num("3"), "seq": num("4"), "timestamp": num("5")}},
		{"error", AppendError(nil, "bad_request", "limit must be a positive integer", nil),
			obj{"type": "error", "code": "bad_request", "message": "limit must be a positive integer"}},
		{"error with id", AppendError(nil, "not_joined", "join \"r\" first", []byte(`"q"`)),
			obj{"type": "error", "code": "not_joined", "message": "join \"r\" first", "id": "q"}},
		{"pong", AppendPong(nil), obj{"type": "pong"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeFrame(t, tt.frame)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("frame %s\n got %v\nwant %v", tt.frame, got, tt.want)
			}
		})
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("PREFIX")
	for name, appendFrame := range map[string]func([]byte) []byte{
		"chat":    func(b []byte) []byte { return AppendChat(b, Chat{Room: "r"}) },
		"history": func(b []byte) []byte { return AppendHistory(b, "r", []Chat{{Seq: 1}}) },
		"welcome": func(b []byte) []byte { return AppendWelcome(b, Welcome{"u", "s", nil, "p", 1, ""}) },
		"joined":  func(b []byte) []byte { return AppendJoined(b, "r", 1, true, true) },
		"left":    func(b []byte) []byte { return AppendLeft(b, "r") },
		"presence": func(b []byte) []byte {
			return AppendPresenceChange(b, true, "r", "u", 1)
		},
		"online": func(b []byte) []byte { return AppendOnlineUsers(b, "r", []string{"u"}, 1) },
		"presence_diff": func(b []byte) []byte {
			return AppendPresenceDiff(b, PresenceDiff{Room: "r", Joined: []string{"u"}, Count: 1})
		},
		"direct": func(b []byte) []byte { return AppendDirect(b, Direct{From: "a"}) },
		"typing": func(b []byte) []byte { return AppendTyping(b, "r", "u") },
		"ack":    func(b []byte) []byte { return AppendAck(b, []byte("1"), 1, 1) },
		"error":  func(b []byte) []byte { return AppendError(b, "c", "m", []byte("1")) },
		"pong":   AppendPong,
		"string": func(b []byte) []byte { return AppendString(b, "s") },
	} {
		b := append([]byte(nil), prefix...)
		got := appendFrame(b)
		if !bytes.HasPrefix(got, prefix) {
			t.Errorf("%s: output %q lost the prefix %q", name, got, prefix)
			continue
		}
		if rest := got[len(prefix):]; !json.Valid(rest) {
			t.Errorf("%s: appended %q is not valid JSON", name, rest)
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		in      string
		want    string // the exact encoding
		decoded string // what a JSON decoder reads back
	}{
		{"", `""`, ""},
		{"plain", `"plain"`, "plain"},
		{`say "hi"`, `"say \"hi\""`, `say "hi"`},
		{`back\slash`, `"back\\slash"`, `back\slash`},
		{"a\nb\rc\td", `"a\nb\rc\td"`, "a\nb\rc\td"},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`, "\x00\x01\x1f"},
		{"\x7f", "\"\x7f\"", "\x7f"},
		{"<a&b>", `"<a&b>"`, "<a&b>"},
		{"é🎉", `"é🎉"`, "é🎉"},
		{"line\u2028para\u2029end", `"line\u2028para\u2029end"`, "line\u2028para\u2029end"},
		{"bad\xffbyte", `"bad\ufffdbyte"`, "bad\ufffdbyte"},
		{"\xc3", `"\ufffd"`, "\ufffd"},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`, "\ufffd\ufffd\ufffd"}, // an encoded surrogate: each byte invalid
		{"\xf0\x9f\x8e", `"\ufffd\ufffd\ufffd"`, "\ufffd\ufffd\ufffd"}, // a truncated 4-byte rune
		{"\ufffd", `"` + "\ufffd" + `"`, "\ufffd"},                     // a real U+FFFD stays as it is
	}
	for _, tt := range tests {
		got := AppendString(nil, tt.in)
		if string(got) != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		var decoded string
		if err := json.Unmarshal(got, &decoded); err != nil {
			t.Errorf("AppendString(%q) = %s: not a JSON string: %v", tt.in, got, err)
			continue
		}
		if decoded != tt.decoded {
			t.Errorf("AppendString(%q) decodes to %q, want %q", tt.in, decoded, tt.decoded)
		}
		if want := stdlibRoundTrip(t, tt.in); decoded != want {
			t.Errorf("AppendString(%q) decodes to %q, encoding/json's round trip gives %q", tt.in, decoded, want)
		}
	}
}

// TestAppendStringAllBytes runs every single byte and every pair through
// AppendString and compares with encoding/json.
func TestAppendStringAllBytes(t *testing.T) {
	var buf []byte
	for i := range 256 {
		for _, s := range []string{string([]byte{byte(i)}), "a" + string([]byte{byte(i)}) + "\u2028"} {
			buf = AppendString(buf[:0], s)
			var decoded string
			if err := json.Unmarshal(buf, &decoded); err != nil {
				t.Fatalf("AppendString(%q) = %s: %v", s, buf, err)
			}
			if want := stdlibRoundTrip(t, s); decoded != want {
				t.Errorf("AppendString(%q) decodes to %q, encoding/json gives %q", s, decoded, want)
			}
		}
	}
}

// stdlibRoundTrip is what encoding/json makes of s: marshalled and read back.
func stdlibRoundTrip(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json.Marshal(%q): %v", s, err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("json.Unmarshal(%s): %v", b, err)
	}
	return out
}

func TestAppendCompact(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{}`, `{}`},
		{" { \"a\" : 1 } ", `{"a":1}`},
		{"[\n1,\r\n2\t]", `[1,2]`},
		{`{"k":"a b\n"}`, `{"k":"a b\n"}`},
		{`"spaces  inside"`, `"spaces  inside"`},
		{`{"k":"esc \" still string ","z":[ 1 ]}`, `{"k":"esc \" still string ","z":[1]}`},
		{`{"k":"\\","z":[ 1 ]}`, `{"k":"\\","z":[1]}`},
		{`{"k":"\\\" x","z":[ 1 ]}`, `{"k":"\\\" x","z":[1]}`},
	}
	for _, tt := range tests {
		if got := string(appendCompact(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("appendCompact(%q) = %q, want %q", tt.in, got, tt.want)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(tt.in)); err == nil && compact.String() != tt.want {
			t.Errorf("appendCompact(%q): json.Compact gives %q, the test wants %q", tt.in, compact.String(), tt.want)
		}
	}
}

func TestAppendChatAllocs(t *testing.T) {
	m := Chat{Room: "lobby", Seq: 123456, ID: "0123456789abcdef01234567", Username: "alice",
		Content: "hello, \"world\" — with some escaping\n", Data: json.RawMessage(`{"k": [1, 2]}`), Timestamp: 1700000000000}
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendChat(buf[:0], m)
	})
	if allocs != 0 {
		t.Errorf("AppendChat into a preallocated buffer: %v allocs per run, want 0", allocs)
	}
	history := []Chat{m, m, m}
	allocs = testing.AllocsPerRun(100, func() {
		buf = AppendHistory(buf[:0], "lobby", history)
	})
	if allocs != 0 {
		t.Errorf("AppendHistory into a preallocated buffer: %v allocs per run, want 0", allocs)
	}
}

func TestChatLen(t *testing.T) {
	for _, m := range []Chat{
		{},
		{Room: "lobby", Seq: 7, ID: "m1", Username: "alice", Content: "hi all", Timestamp: 1700000000123},
		{Room: "r", Seq: math.MaxUint64, ID: "0123456789abcdef01234567", Username: "bob", Content: "x",
			Data: json.RawMessage(`{"k": [1, 2]}`), Timestamp: math.MinInt64},
	} {
		frame := AppendChat(nil, m)
		if len(frame) > ChatLen(m) {
			t.Errorf("ChatLen = %d, but the frame is %d bytes: %s", ChatLen(m), len(frame), frame)
		}
		if grown := AppendChat(make([]byte, 0, ChatLen(m)), m); cap(grown) != ChatLen(m) {
			t.Errorf("AppendChat grew a buffer of ChatLen(m) = %d bytes to %d", ChatLen(m), cap(grown))
		}
	}
}

func BenchmarkEncodeChat(b *testing.B) {
	m := Chat{Room: "lobby", Seq: 123456, ID: "0123456789abcdef01234567", Username: "alice",
		Content: strings.Repeat("hello, world ", 8), Timestamp: 1700000000000}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendChat(buf[:0], m)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodeChatEscaped(b *testing.B) {
	m := Chat{Room: "lobby", Seq: 123456, ID: "0123456789abcdef01234567", Username: "alice",
		Content: strings.Repeat("«quoted» \"text\"\n\t", 8), Data: json.RawMessage(`{"k": [1, 2, 3], "s": "x y"}`), Timestamp: 1700000000000}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendChat(buf[:0], m)
	}
	b.SetBytes(int64(len(buf)))
}
