package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/partyline/partyline"
)

// sampleMessages are messages of one room with the edges of each field: an
// empty string, bytes that are not UTF-8, a NUL, data absent, empty and
// set, negative and extreme timestamps, and seqs and lengths at a varint's
// edges.
func sampleMessages(room string) []partyline.Message {
	return []partyline.Message{
		{Room: room, Seq: 1, ID: "a1", Username: "ann", Content: "hello", Timestamp: 1_700_000_000_000},
		{Room: room, Seq: 2, ID: "", Username: "bob", Content: "", Data: json.RawMessage(`{"x": [1, 2]}`), Timestamp: -1},
		{Room: room, Seq: 3, ID: "c3", Username: "ünï", Content: "line\nbreak \x00 \xff\xfe", Data: json.RawMessage{}},
		{Room: room, Seq: 1 << 62, ID: strings.Repeat("i", 300), Username: "u", Content: strings.Repeat("long ", 1000)},
		{Room: room, Seq: math.MaxUint64, Username: "v", Timestamp: math.MinInt64},
		{Room: room, Seq: 127, Username: "w", Data: json.RawMessage(strings.Repeat(" ", 127)), Timestamp: math.MaxInt64},
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	for _, withRoom := range []bool{true, false} {
		messages := sampleMessages("room")
		if withRoom {
			messages[1].Room = "another room"
		}
		b := appendRecords(nil, messages, withRoom)
		if len(b) != recordsLen(messages, withRoom) {
			t.Errorf("withRoom %v: recordsLen = %d, appendRecords wrote %d bytes", withRoom, recordsLen(messages, withRoom), len(b))
		}
		got, err := decodeRecords(nil, b, withRoom, "room")
		if err != nil || !reflect.DeepEqual(got, messages) {
			t.Errorf("withRoom %v: decodeRecords(appendRecords(m)) = %+v, %v; want m, %+v", withRoom, got, err, messages)
		}
		if got[0].Data != nil || got[2].Data == nil {
			t.Errorf("withRoom %v: data absent decoded as %q, data empty as %q; want nil and empty", withRoom, got[0].Data, got[2].Data)
		}
	}
}

func TestDecodeRecordsRejects(t *testing.T) {
	whole := appendRecords(nil, sampleMessages("r"), false)
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"another version", append([]byte{recordsVersion + 1}, whole[1:]...)},
		{"truncated in a string", whole[:len(whole)/2]},
		{"truncated in a varint", append(appendRecords(nil, nil, false), 0x80)},
		{"a length past the end", append(appendRecords(nil, nil, false), 1, 0xff, 0x01)},
	} {
		if got, err := decodeRecords(nil, tt.b, false, "r"); !errors.Is(err, errBadRecords) {
			t.Errorf("%s: decodeRecords = %d messages, %v; want errBadRecords", tt.name, len(got), err)
		}
	}
}

func TestChunked(t *testing.T) {
	messages := make([]partyline.Message, 2*maxChunk+1)
	var sizes []int
	for _, c := range chunked(messages) {
		sizes = append(sizes, len(c))
	}
	if want := []int{maxChunk, maxChunk, 1}; !reflect.DeepEqual(sizes, want) {
		t.Errorf("chunks of %d messages: %v, want %v", len(messages), sizes, want)
	}
	if got := chunked(nil); len(got) != 0 {
		t.Errorf("chunked(nil) = %v, want none", got)
	}
}

// FuzzDecodeRecords checks that decodeRecords never panics, and that what
// it decodes, written again, decodes the same.
func FuzzDecodeRecords(f *testing.F) {
	f.Add(appendRecords(nil, sampleMessages("r"), true), true)
	f.Add(appendRecords(nil, sampleMessages("r"), false), false)
	f.Add([]byte{recordsVersion, 0x80}, false)
	f.Fuzz(func(t *testing.T, b []byte, withRoom bool) {
		messages, err := decodeRecords(nil, b, withRoom, "r")
		if err != nil {
			return
		}
		again, err := decodeRecords(nil, appendRecords(nil, messages, withRoom), withRoom, "r")
		if err != nil || !reflect.DeepEqual(again, messages) {
			t.Errorf("decoded %+v; written again, decoded %+v, %v", messages, again, err)
		}
	})
}

// TestMigrationChunksMessages opens a database of schema version 3, one
// message a row, with what a crashed process left in its log, and reads
// every message back.
func TestMigrationChunksMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	mustExec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.Exec(query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	mustExec(`CREATE TABLE partyline_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)`)
	for version, name := range []string{"0001_init", "0002_webhooks", "0003_message_log"} {
		schema, err := fs.ReadFile(migrationFiles, "migrations/"+name+".sql")
		if err != nil {
			t.Fatal(err)
		}
		mustExec(string(schema))
		mustExec(`INSERT INTO partyline_migrations VALUES (?, ?, 0)`, version+1, name)
	}
	insert := func(table string, m partyline.Message) {
		var data any
		if m.Data != nil {
			data = []byte(m.Data)
		}
		mustExec(`INSERT INTO `+table+` (room, seq, id, username, content, data, timestamp_ms) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			m.Room, int64(m.Seq), m.ID, m.Username, m.Content, data, m.Timestamp)
	}
	var want []partyline.Message // room a: 150 moved, 2 logged; b: trimmed to 5-7; c: logged
	for seq := uint64(1); seq <= 152; seq++ {
		m := partyline.Message{Room: "a", Seq: seq, ID: fmt.Sprint("id-", seq), Username: "ann", Content: fmt.Sprint("message ", seq), Timestamp: int64(seq)}
		if seq%3 == 0 {
			m.Data = json.RawMessage(fmt.Sprintf(`{"n": %d}`, seq))
		}
		want = append(want, m)
	}
	want = append(want, sampleMessages("b")[:3]...)
	for i := range 3 {
		want[152+i].Seq = uint64(5 + i)
	}
	want[154].Data = nil // a row's empty data reads back as none, as it always did
	want = append(want, partyline.Message{Room: "c", Seq: 1, ID: "c1", Username: "cy", Content: "logged"})
	for _, m := range want {
		if m.Room == "c" || m.Room == "a" && m.Seq > 150 {
			insert("message_log", m)
		} else {
			insert("messages", m)
		}
	}
	mustExec(`INSERT INTO rooms VALUES ('a', 150), ('b', 7)`)
	db.Close()

	store := openForTest(t, path)
	var got []partyline.Message
	for _, room := range []string{"a", "b", "c"} {
		for after := uint64(0); ; {
			page, err := store.History(t.Context(), room, partyline.HistoryQuery{Forward: true, After: after, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].Seq
		}
	}
	if len(got) != len(want) {
		t.Errorf("after the migration History reads %d messages, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("after the migration History reads %+v, want %+v", got[i], want[i])
		}
	}
	if n := countRows(t, store, "sqlite_schema WHERE name = 'messages'"); n != 0 {
		t.Errorf("the messages table is still there after the migration")
	}
	next, err := store.Append(t.Context(), partyline.Message{Room: "a"})
	if err != nil || next.Seq != 153 {
		t.Errorf("Append to room a after the migration = seq %d, %v; want 153", next.Seq, err)
	}
}
