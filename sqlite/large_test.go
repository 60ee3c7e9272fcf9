package sqlite_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/storetest"
)

// integrityCheck runs PRAGMA integrity_check on path with the plain driver,
// once the Store on it is closed.
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var result string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&result); err != nil || result != "ok" {
		t.Errorf("PRAGMA integrity_check = %q, %v; want ok", result, err)
	}
}

// TestLargeMessagesRoundTrip stores messages as large as the server
// accepts, each spanning several overflow pages, and trims them.
func TestLargeMessagesRoundTrip(t *testing.T) {
	const keep = 4
	path := filepath.Join(t.TempDir(), "large.db")
	store := open(t, path, keep)
	var sent []partyline.Message
	for i := range 3 * keep {
		msg, err := store.Append(t.Context(), largeMessage(i))
		if err != nil {
			t.Fatalf("Append #%d: %v", i, err)
		}
		sent = append(sent, msg)
	}
	got, err := store.History(t.Context(), "large", partyline.HistoryQuery{Before: uint64(len(sent)) + 1, Limit: 100})
	if err != nil || len(got) != keep {
		t.Fatalf("History = %d messages, %v; want the newest %d", len(got), err, keep)
	}
	for i, m := range got {
		if d := storetest.DiffMessage(m, sent[len(sent)-keep+i]); d != "" {
			t.Errorf("History[%d]: %s", i, d)
		}
	}
	store.Close()
	integrityCheck(t, path)
}

// largeMessage returns a message of room "large" whose content and data
// each fill partyline.DefaultMaxMessageSize.
func largeMessage(i int) partyline.Message {
	data, _ := json.Marshal(map[string]string{"fill": strings.Repeat(fmt.Sprint(i%10), partyline.DefaultMaxMessageSize-12)})
	return partyline.Message{
		Room: "large", ID: fmt.Sprint(i), Username: "u", Timestamp: int64(i),
		Content: strings.Repeat(fmt.Sprint(i%10), partyline.DefaultMaxMessageSize),
		Data:    data,
	}
}
