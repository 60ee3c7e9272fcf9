package partyline

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
)

func TestEventRoundTrip(t *testing.T) {
	for _, e := range []event{
		{kind: eventChat, seq: 1, at: 1700000000000000000, except: "", payload: []byte(`{"type":"chat"}`)},
		{kind: eventPresence, except: "0123456789abcdef", payload: []byte(`{"type":"user_joined"}`)},
		{kind: eventTyping, seq: 0, at: -1, except: "s", payload: []byte(`{}`)},
		{kind: eventDirect, seq: math.MaxUint64, at: math.MaxInt64, except: string(make([]byte, 300)), payload: bytes.Repeat([]byte("x"), 1<<16)},
		{kind: eventKick, at: math.MinInt64},
		{kind: eventKick, except: "\xff\x00 not utf-8"},
		{kind: eventCommand, at: 7, command: commandKick, request: 1, node: "0123456789abcdef"},
		{kind: eventCommand, command: commandKick, request: math.MaxUint64, node: "n", room: "lobby", payload: []byte("x")},
		{kind: eventReply, command: commandKick, request: 300, node: "fedcba9876543210", count: 2},
		{kind: eventReply, command: lastCommandKind, count: math.MaxUint64, except: "s", node: string(make([]byte, 200))},
	} {
		b := e.marshal()
		got, err := parseEvent(b)
		if err != nil {
			t.Errorf("parseEvent(marshal(%v)): %v", describeEvent(e), err)
			continue
		}
		if !eventsEqual(got, e) {
			t.Errorf("parseEvent(marshal(e))\n got %v\nwant %v", describeEvent(got), describeEvent(e))
		}
	}
}

func TestParseEventMalformed(t *testing.T) {
	valid := event{kind: eventChat, seq: 300, at: 5, except: "abc", payload: []byte("frame")}.marshal()
	validCommand := event{kind: eventReply, command: commandKick, request: 9, node: "n1", count: 300}.marshal()
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"kind 0", []byte{0, 1, 1, 0}},
		{"kind past the last", []byte{byte(lastEventKind) + 1, 1, 1, 0}},
		{"kind 255", []byte{255, 1, 1, 0}},
		{"kind only", []byte{byte(eventChat)}},
		{"truncated seq", []byte{byte(eventChat), 0x80}},
		{"seq overflows", append([]byte{byte(eventChat)}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"no at", []byte{byte(eventChat), 1}},
		{"truncated at", []byte{byte(eventChat), 1, 0x80}},
		{"no except length", []byte{byte(eventChat), 1, 1}},
		{"except longer than the rest", []byte{byte(eventChat), 1, 1, 5, 'a', 'b'}},
		{"except length huge", append([]byte{byte(eventChat), 1, 1}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"valid cut after the except length", valid[:4]},
		{"command without its fields", []byte{byte(eventCommand), 1, 1, 0}},
		{"command 0", []byte{byte(eventCommand), 1, 1, 0, 0, 1, 0, 0, 0}},
		{"command past the last", []byte{byte(eventCommand), 1, 1, 0, byte(lastCommandKind) + 1, 1, 0, 0, 0}},
		{"reply with command 0", []byte{byte(eventReply), 1, 1, 0, 0, 1, 0, 0, 0}},
		{"command cut after node", []byte{byte(eventCommand), 1, 1, 0, byte(commandKick), 1, 2, 'a', 'b'}},
		{"command node longer than the rest", []byte{byte(eventCommand), 1, 1, 0, byte(commandKick), 1, 9, 'a'}},
		{"command room longer than the rest", []byte{byte(eventCommand), 1, 1, 0, byte(commandKick), 1, 0, 3, 'a'}},
		{"reply count truncated", []byte{byte(eventReply), 1, 1, 0, byte(commandKick), 1, 0, 0, 0x80}},
		{"valid command cut", validCommand[:len(validCommand)-3]}, // into count, before the empty payload's 2-byte header
		{"payload cut", valid[:len(valid)-1]},
		{"payload not framed", append(valid[:len(valid)-7:len(valid)-7], "frame"...)},
	}
	for _, tt := range tests {
		if _, err := parseEvent(tt.b); !errors.Is(err, errBadEvent) {
			t.Errorf("parseEvent(%s %x): error %v, want errBadEvent", tt.name, tt.b, err)
		}
	}
	// A payload may be missing: the event ends right after except.
	if e, err := parseEvent(valid[:len(valid)-len("\x81\x05frame")]); err != nil || e.except != "abc" || len(e.payload) != 0 {
		t.Errorf("parseEvent(without payload) = %v, %v; want except \"abc\" and an empty payload", describeEvent(e), err)
	}
}

func TestParseEventFrameAliasesInput(t *testing.T) {
	b := event{kind: eventChat, seq: 1, payload: []byte("abc")}.marshal()
	e, err := parseEvent(b)
	if err != nil {
		t.Fatalf("parseEvent: %v", err)
	}
	b[len(b)-1] = 'Z'
	if string(e.payload) != "abZ" {
		t.Errorf("frame = %q after changing the input, want %q (the documented aliasing)", e.payload, "abZ")
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte{})
	f.Add(event{kind: eventChat, seq: 42, at: 1, except: "s1", payload: []byte(`{"type":"chat"}`)}.marshal())
	f.Add(event{kind: eventKick}.marshal())
	f.Add(event{kind: eventDirect, seq: math.MaxUint64, at: math.MinInt64}.marshal())
	f.Add([]byte{byte(eventChat), 0x80, 0x80, 0x80})
	f.Add([]byte{byte(eventTyping), 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 'x'})
	f.Add(event{kind: eventCommand, command: commandKick, request: 1, node: "0123456789abcdef", room: "lobby"}.marshal())
	f.Add(event{kind: eventReply, command: commandKick, request: 1, node: "fedcba9876543210", count: 3}.marshal())
	f.Add([]byte{byte(eventCommand), 1, 1, 0, byte(commandKick), 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{byte(eventReply), 0, 0, 0, byte(lastCommandKind) + 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEvent(b)
		if err != nil {
			return
		}
		if e.kind < eventChat || e.kind > lastEventKind {
			t.Fatalf("parseEvent(%x) accepted kind %d", b, e.kind)
		}
		if e.kind.isCommand() && (e.command < commandKick || e.command > lastCommandKind) {
			t.Fatalf("parseEvent(%x) accepted command %d", b, e.command)
		}
		if !e.kind.isCommand() && (e.command != 0 || e.request != 0 || e.node != "" || e.room != "" || e.count != 0) {
			t.Fatalf("parseEvent(%x) set command fields on kind %d: %v", b, e.kind, describeEvent(e))
		}
		if n := len(e.except) + len(e.node) + len(e.room) + len(e.payload); n >= len(b) {
			t.Fatalf("parseEvent(%x): %d bytes of strings and frame from a %d-byte input", b, n, len(b))
		}
		again, err := parseEvent(e.marshal())
		if err != nil {
			t.Fatalf("parseEvent(marshal(parseEvent(%x))): %v", b, err)
		}
		if !eventsEqual(again, e) {
			t.Fatalf("re-marshalled event of %x\n got %v\nwant %v", b, describeEvent(again), describeEvent(e))
		}
	})
}

func eventsEqual(a, b event) bool {
	return a.kind == b.kind && a.seq == b.seq && a.at == b.at && a.except == b.except && bytes.Equal(a.payload, b.payload) &&
		a.command == b.command && a.request == b.request && a.node == b.node && a.room == b.room && a.count == b.count
}

func describeEvent(e event) string {
	payload := e.payload
	if len(payload) > 40 {
		payload = payload[:40]
	}
	return fmt.Sprintf("{kind:%d seq:%d at:%d except:%q command:%d request:%d node:%q room:%q count:%d payload(%d bytes):%q}",
		e.kind, e.seq, e.at, e.except, e.command, e.request, e.node, e.room, e.count, len(e.payload), payload)
}
