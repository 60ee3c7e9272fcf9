package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/partyline/partyline"
)

func TestBound(t *testing.T) {
	for _, tt := range []struct {
		q    partyline.HistoryQuery
		want int64
	}{
		{partyline.HistoryQuery{}, math.MaxInt64}, // newest page
		{partyline.HistoryQuery{Before: 7, After: 3}, 7},
		{partyline.HistoryQuery{Before: math.MaxUint64}, math.MaxInt64},
		{partyline.HistoryQuery{Forward: true, Before: 7}, 0}, // from the first
		{partyline.HistoryQuery{Forward: true, After: 3, Before: 7}, 3},
		{partyline.HistoryQuery{Forward: true, After: math.MaxInt64 + 1}, math.MaxInt64},
	} {
		if got := Bound(tt.q); got != tt.want {
			t.Errorf("Bound(%+v) = %d, want %d", tt.q, got, tt.want)
		}
	}
}

// fakeRows yields its rows, each a list of column values, then err.
type fakeRows struct {
	rows [][]any
	err  error
	next int
}

func (r *fakeRows) Next() bool {
	r.next++
	return r.next <= len(r.rows)
}

func (r *fakeRows) Scan(dest ...any) error {
	row := r.rows[r.next-1]
	if len(dest) != len(row) {
		return fmt.Errorf("scan %d columns into %d", len(row), len(dest))
	}
	for i, v := range row {
		if err, ok := v.(error); ok {
			return err
		}
		reflect.ValueOf(dest[i]).Elem().Set(reflect.ValueOf(v))
	}
	return nil
}

func (r *fakeRows) Err() error { return r.err }

func TestScan(t *testing.T) {
	rows := &fakeRows{rows: [][]any{
		{uint64(4), "a", "alice", []byte("hi"), []byte(nil), int64(10)},
		{uint64(5), "b", "bob", []byte(nil), []byte(`{"x":1}`), int64(-1)},
	}}
	got, err := Scan(rows, "lobby")
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	want := []partyline.Message{
		{Room: "lobby", Seq: 4, ID: "a", Username: "alice", Content: "hi", Timestamp: 10},
		{Room: "lobby", Seq: 5, ID: "b", Username: "bob", Data: json.RawMessage(`{"x":1}`), Timestamp: -1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Scan = %+v, want %+v", got, want)
	}
	if got[0].Data != nil {
		t.Errorf("Scan of NULL data: Data = %q, want nil", got[0].Data)
	}
}

func TestScanNoRows(t *testing.T) {
	got, err := Scan(&fakeRows{}, "lobby")
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("Scan(no rows) = %#v, %v; want an empty non-nil slice", got, err)
	}
}

func TestScanErrors(t *testing.T) {
	bad := errors.New("bad row")
	for name, rows := range map[string]*fakeRows{
		"scan": {rows: [][]any{{uint64(1), "a", "u", []byte("x"), []byte(nil), bad}}},
		"err":  {rows: [][]any{{uint64(1), "a", "u", []byte("x"), []byte(nil), int64(0)}}, err: bad},
	} {
		if got, err := Scan(rows, "lobby"); !errors.Is(err, bad) || got != nil {
			t.Errorf("Scan with a failing %s = %+v, %v; want nil, %v", name, got, err, bad)
		}
	}
}
