package wire

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Chat is a stored chat message as it appears in chat and history frames.
type Chat struct {
	Room      string
	Seq       uint64
	ID        string
	Username  string
	Content   string
	Data      json.RawMessage // or nil
	Timestamp int64           // Unix milliseconds
}

// AppendChat appends a chat frame.
func AppendChat(b []byte, m Chat) []byte {
	b = append(b, `{"type":"chat","room":`...)
	b = AppendString(b, m.Room)
	b = append(b, `,"username":`...)
	b = AppendString(b, m.Username)
	b = append(b, `,"content":`...)
	b = AppendString(b, m.Content)
	if len(m.Data) > 0 {
		b = append(b, `,"data":`...)
		b = appendCompact(b, m.Data)
	}
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, m.Timestamp, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, `,"id":`...)
	b = AppendString(b, m.ID)
	return append(b, '}')
}

// chatFixed is the length of a chat frame's keys, quotes and punctuation,
// with room for the widest timestamp and seq.
const chatFixed = len(`{"type":"chat","room":"","username":"","content":"","data":,"timestamp":,"seq":,"id":""}`) + 20 + 20

// ChatLen returns at least the length of m's chat frame when none of its
// strings needs escaping: the capacity with which AppendChat writes m
// without growing its buffer.
func ChatLen(m Chat) int {
	return chatFixed + len(m.Room) + len(m.Username) + len(m.Content) + len(m.Data) + len(m.ID)
}

// AppendHistory appends a history frame holding messages in the given order.
func AppendHistory(b []byte, room string, messages []Chat) []byte {
	b = append(b, `{"type":"history","room":`...)
	b = AppendString(b, room)
	b = append(b, `,"messages":[`...)
	for i, m := range messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendChat(b, m)
	}
	return append(b, "]}"...)
}

// Welcome is what the welcome frame, the first of a connection, says.
type Welcome struct {
	Username, Session string
	Rooms             []string // the URL's rooms
	Server            string   // name/version
	MaxMessageSize    int64    // the largest message the server takes, in bytes
	Epoch             string   // the store's life when it does not outlive the process; "" for none
}

// AppendWelcome appends the welcome frame w.
func AppendWelcome(b []byte, w Welcome) []byte {
	b = append(b, `{"type":"welcome","username":`...)
	b = AppendString(b, w.Username)
	b = append(b, `,"session":`...)
	b = AppendString(b, w.Session)
	b = append(b, `,"rooms":`...)
	b = appendStrings(b, w.Rooms)
	b = append(b, `,"server":`...)
	b = AppendString(b, w.Server)
	b = append(b, `,"max_message_size":`...)
	b = strconv.AppendInt(b, w.MaxMessageSize, 10)
	if w.Epoch != "" {
		b = append(b, `,"epoch":`...)
		b = AppendString(b, w.Epoch)
	}
	return append(b, '}')
}

// AppendJoined appends a joined frame; recovered is written only when
// withRecovered is set (the join carried since).
func AppendJoined(b []byte, room string, seq uint64, withRecovered, recovered bool) []byte {
	b = append(b, `{"type":"joined","room":`...)
	b = AppendString(b, room)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if withRecovered {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, recovered)
	}
	return append(b, '}')
}

// AppendLeft appends a left frame.
func AppendLeft(b []byte, room string) []byte {
	b = append(b, `{"type":"left","room":`...)
	b = AppendString(b, room)
	return append(b, '}')
}

// AppendPresenceChange appends a user_joined (joined true) or user_left frame.
func AppendPresenceChange(b []byte, joined bool, room, username string, timestamp int64) []byte {
	kind, verb := "user_left", " left the room"
	if joined {
		kind, verb = "user_joined", " joined the room"
	}
	b = append(b, `{"type":"`...)
	b = append(b, kind...)
	b = append(b, `","room":`...)
	b = AppendString(b, room)
	b = append(b, `,"username":`...)
	b = AppendString(b, username)
	b = append(b, `,"content":`...)
	b = AppendString(b, username+verb)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, timestamp, 10)
	return append(b, '}')
}

// AppendOnlineUsers appends an online_users frame: users, sorted and
// unique (none for a room too large to list), and count, how many users
// are online.
func AppendOnlineUsers(b []byte, room string, users []string, count int) []byte {
	b = append(b, `{"type":"online_users","room":`...)
	b = AppendString(b, room)
	b = append(b, `,"users":`...)
	b = appendStrings(b, users)
	b = append(b, `,"content":"`...)
	for i, u := range users {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEscaped(b, u)
	}
	b = append(b, `","count":`...)
	b = strconv.AppendInt(b, int64(count), 10)
	return append(b, '}')
}

// PresenceDiff is the presence changes of a large room over an interval.
type PresenceDiff struct {
	Room string
	// Joined and Left name users who came and went, up to a cap; JoinedMore
	// and LeftMore count those left out beyond it.
	Joined, Left         []string
	JoinedMore, LeftMore int
	Count                int   // users online in the room
	Timestamp            int64 // Unix milliseconds
}

// AppendPresenceDiff appends a presence_diff frame.
func AppendPresenceDiff(b []byte, d PresenceDiff) []byte {
	b = append(b, `{"type":"presence_diff","room":`...)
	b = AppendString(b, d.Room)
	b = append(b, `,"joined":`...)
	b = appendStrings(b, d.Joined)
	b = append(b, `,"left":`...)
	b = appendStrings(b, d.Left)
	b = append(b, `,"joined_more":`...)
	b = strconv.AppendInt(b, int64(d.JoinedMore), 10)
	b = append(b, `,"left_more":`...)
	b = strconv.AppendInt(b, int64(d.LeftMore), 10)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(d.Count), 10)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, d.Timestamp, 10)
	return append(b, '}')
}

// Direct is a private message between two users.
type Direct struct {
	From, To  string
	Content   string
	Data      []byte // raw JSON, or nil
	Timestamp int64
	ID        string
}

// AppendDirect appends a direct frame.
func AppendDirect(b []byte, d Direct) []byte {
	b = append(b, `{"type":"direct","from":`...)
	b = AppendString(b, d.From)
	b = append(b, `,"to":`...)
	b = AppendString(b, d.To)
	b = append(b, `,"content":`...)
	b = AppendString(b, d.Content)
	if len(d.Data) > 0 {
		b = append(b, `,"data":`...)
		b = appendCompact(b, d.Data)
	}
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, d.Timestamp, 10)
	b = append(b, `,"id":`...)
	b = AppendString(b, d.ID)
	return append(b, '}')
}

// AppendTyping appends a typing frame.
func AppendTyping(b []byte, room, username string) []byte {
	b = append(b, `{"type":"typing","room":`...)
	b = AppendString(b, room)
	b = append(b, `,"username":`...)
	b = AppendString(b, username)
	return append(b, '}')
}

// AppendAck appends an ack echoing id; seq and timestamp are written when
// seq is not zero (acks of chat messages).
func AppendAck(b []byte, id []byte, seq uint64, timestamp int64) []byte {
	b = append(b, `{"type":"ack","id":`...)
	b = append(b, id...)
	if seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, `,"timestamp":`...)
		b = strconv.AppendInt(b, timestamp, 10)
	}
	return append(b, '}')
}

// AppendError appends an error frame; id is echoed when not empty.
func AppendError(b []byte, code, message string, id []byte) []byte {
	b = append(b, `{"type":"error","code":`...)
	b = AppendString(b, code)
	b = append(b, `,"message":`...)
	b = AppendString(b, message)
	if len(id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	return append(b, '}')
}

// AppendClose appends {"type":"close","code":…,"reason":…}: how a stream
// that is not a WebSocket tells the client that the server closes it
// (docs/protocol.md §12.1).
func AppendClose(b []byte, code int, reason string) []byte {
	b = append(b, `{"type":"close","code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"reason":`...)
	b = AppendString(b, reason)
	return append(b, '}')
}

// AppendPong appends a pong frame.
func AppendPong(b []byte) []byte { return append(b, `{"type":"pong"}`...) }

func appendStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, s)
	}
	return append(b, ']')
}

// appendCompact appends the JSON value v without its insignificant
// whitespace. Server frames are batched one per line (docs/protocol.md §4),
// so a newline that a client or the HTTP API legally put between the tokens
// of data would otherwise split the frame for every receiver.
func appendCompact(b []byte, v []byte) []byte {
	inString, escaped := false, false
	start := 0
	for i, c := range v {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			b = append(b, v[start:i]...)
			start = i + 1
		}
	}
	return append(b, v[start:]...)
}

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
