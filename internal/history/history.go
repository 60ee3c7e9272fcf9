// Package history holds the dialect-free part of a SQL Store's History:
// the seq bound a partyline.HistoryQuery pages from, and reading the page's
// rows into messages. Each Store keeps its own SQL text and driver calls.
package history

import (
	"math"

	"github.com/partyline/partyline"
)

// Bound returns the exclusive seq bound of the page q asks for, as the
// int64 SQL compares seqs with. With q.Forward it is q.After, 0 meaning
// from the first message; otherwise it is q.Before, 0 meaning from the
// newest (math.MaxInt64). A bound past math.MaxInt64 becomes math.MaxInt64.
func Bound(q partyline.HistoryQuery) int64 {
	seq, zero := q.Before, int64(math.MaxInt64)
	if q.Forward {
		seq, zero = q.After, 0
	}
	switch {
	case seq == 0:
		return zero
	case seq > math.MaxInt64:
		return math.MaxInt64
	}
	return int64(seq)
}

// Rows is the part of *sql.Rows and pgx.Rows that Scan reads.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// Scan reads rows of (seq, id, username, content, data, timestamp_ms), in
// the order the query returned them, into messages of room. content may be
// text or bytes; a NULL data leaves Data nil. Scan returns a non-nil slice,
// empty when there are no rows, or the first error of rows. It does not
// close rows.
func Scan(rows Rows, room string) ([]partyline.Message, error) {
	messages := []partyline.Message{}
	for rows.Next() {
		msg := partyline.Message{Room: room}
		var content, data []byte
		if err := rows.Scan(&msg.Seq, &msg.ID, &msg.Username, &content, &data, &msg.Timestamp); err != nil {
			return nil, err
		}
		msg.Content = string(content)
		if data != nil {
			msg.Data = data
		}
		messages = append(messages, msg)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return messages, nil
}
