package eventlog

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/partyline/partyline"
)

func TestSplitMessageEvent(t *testing.T) {
	for _, m := range []partyline.Message{
		{Room: "lobby", ID: "m1", Username: "alice", Content: "hi", Timestamp: 1},
		{Room: `,"seq":0,`, ID: `,"seq":0,`, Username: `,"seq":0,`, Content: `,"seq":0,`,
			Data: json.RawMessage(`{"seq":0, "x":[1]}`), Timestamp: -5},
		{Room: "r", ID: "x", Content: "a\x00b \xff <&>", Data: json.RawMessage(`null`)},
	} {
		head, tail, err := SplitMessageEvent(m)
		if err != nil {
			t.Fatalf("SplitMessageEvent(%+v): %v", m, err)
		}
		for _, seq := range []uint64{1, 42, math.MaxInt64} {
			m.Seq = seq
			want, err := json.Marshal(partyline.MessageEvent(m))
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%s%d%s", head, seq, tail); got != string(want) {
				t.Errorf("head, %d, tail = %s, want %s", seq, got, want)
			}
		}
	}
}

func TestSplitMessageEventInvalidData(t *testing.T) {
	if _, _, err := SplitMessageEvent(partyline.Message{Data: json.RawMessage(`{`)}); err == nil {
		t.Error("SplitMessageEvent with invalid data: no error")
	}
}

func TestEncodeMessagesRoundTrip(t *testing.T) {
	messages := []partyline.Message{
		{Room: "a", Seq: 3, ID: "m1", Username: "alice", Content: "a\x00b \xff", Data: json.RawMessage(`{ "x" : 1 }`), Timestamp: 7},
		{Room: "b", Seq: 1, ID: "m2", Username: "bob", Content: "", Data: nil, Timestamp: math.MaxInt64},
		{Room: "b", Seq: 2, ID: "m3", Data: json.RawMessage(`null`)},
	}
	encoded, err := EncodeMessages(messages)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMessages(encoded)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(messages) {
		t.Fatalf("decoded %d messages, want %d", len(got), len(messages))
	}
	for i := range got {
		g, w := got[i], messages[i]
		if g.Room != w.Room || g.Seq != w.Seq || g.ID != w.ID || g.Username != w.Username ||
			g.Content != w.Content || (g.Data == nil) != (w.Data == nil) || string(g.Data) != string(w.Data) || g.Timestamp != w.Timestamp {
			t.Errorf("message %d: decoded %+v, want %+v", i, g, w)
		}
	}
}

func TestPresenceEvents(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	describe := func(events []partyline.WebhookEvent) []string {
		var out []string
		for _, e := range events {
			if e.Timestamp != now.UnixMilli() || e.ID == "" {
				t.Errorf("%+v: want a fresh id and timestamp now", e)
			}
			out = append(out, fmt.Sprint(e.Type, " ", e.Room, " ", e.Username))
		}
		return out
	}
	for _, tc := range []struct {
		events []partyline.WebhookEvent
		want   []string
	}{
		{JoinedEvents("lobby", "alice", true, now), []string{"room_occupied lobby ", "user_joined lobby alice"}},
		{JoinedEvents("lobby", "alice", false, now), []string{"user_joined lobby alice"}},
		{JoinedEvents("", "alice", true, now), []string{"user_online  alice"}},
		{LeftEvents("lobby", []string{"a", "b"}, true, now), []string{"user_left lobby a", "user_left lobby b", "room_vacated lobby "}},
		{LeftEvents("lobby", []string{"a"}, false, now), []string{"user_left lobby a"}},
		{LeftEvents("", []string{"a"}, true, now), []string{"user_offline  a"}},
	} {
		if got := describe(tc.events); !slices.Equal(got, tc.want) {
			t.Errorf("events %q, want %q", got, tc.want)
		}
	}
}

func TestRoutesRows(t *testing.T) {
	r := NewRoutes([]partyline.WebhookRoute{{URL: "a"}, {URL: "m", Types: []string{partyline.EventMessage}}})
	online := partyline.NewWebhookEvent(partyline.EventUserOnline, time.Now())
	message := partyline.MessageEvent(partyline.Message{Room: "r", ID: "x"})
	rows, err := r.Rows(online, message)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, row := range rows {
		urls = append(urls, row.URL)
	}
	if want := []string{"a", "a", "m"}; !slices.Equal(urls, want) {
		t.Errorf("rows for %v = %q, want %q", []string{online.Type, message.Type}, urls, want)
	}
	if rows, err := Routes(nil).Rows(online); err != nil || rows != nil {
		t.Errorf("no routes: rows %v, %v; want none", rows, err)
	}
}

func TestByRoom(t *testing.T) {
	pairs := []partyline.RoomUser{{Room: "b", User: "y"}, {Room: "", User: "z"}, {Room: "b", User: "x"}, {Room: "a", User: "w"}}
	var got []string
	for room, users := range ByRoom(pairs) {
		got = append(got, fmt.Sprint(room, users))
	}
	if want := []string{"[z]", "a[w]", "b[x y]"}; !slices.Equal(got, want) {
		t.Errorf("ByRoom = %q, want %q", got, want)
	}
}
