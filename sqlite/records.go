package sqlite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/partyline/partyline"
)

// The log and the chunks hold messages as records, one after another in a
// BLOB, byte for byte as they were appended. A record is its fields in
// order, each an unsigned varint or a string (its length as an unsigned
// varint, then its bytes):
//
//	room (log only), seq, id, username, content, data, timestamp
//
// data's length is one more than the bytes that follow, so that 0 stands
// for a message without data; timestamp is a signed varint. A BLOB begins
// with recordsVersion.
const recordsVersion = 1

// maxChunk is how many of a room's messages one row of message_chunks
// holds at most: a History page reads a few rows, and a row of 64
// messages of a few hundred bytes fits in a few pages.
const maxChunk = 64

// appendRecords appends messages as records to b: a BLOB of message_log
// with each message's room when withRoom is set, one of message_chunks,
// all of one room, otherwise.
func appendRecords(b []byte, messages []partyline.Message, withRoom bool) []byte {
	b = append(b, recordsVersion)
	for i := range messages {
		m := &messages[i]
		if withRoom {
			b = appendString(b, m.Room)
		}
		b = binary.AppendUvarint(b, m.Seq)
		b = appendString(b, m.ID)
		b = appendString(b, m.Username)
		b = appendString(b, m.Content)
		if m.Data == nil {
			b = binary.AppendUvarint(b, 0)
		} else {
			b = binary.AppendUvarint(b, uint64(len(m.Data))+1)
			b = append(b, m.Data...)
		}
		b = binary.AppendVarint(b, m.Timestamp)
	}
	return b
}

// recordsLen returns the length of the BLOB appendRecords makes of
// messages, so that it is written into a buffer allocated once.
func recordsLen(messages []partyline.Message, withRoom bool) int {
	n := 1 // recordsVersion
	for i := range messages {
		m := &messages[i]
		if withRoom {
			n += stringLen(m.Room)
		}
		n += uvarintLen(m.Seq) + stringLen(m.ID) + stringLen(m.Username) + stringLen(m.Content)
		n += uvarintLen(uint64(len(m.Data))+1) + len(m.Data)
		n += uvarintLen(uint64(m.Timestamp<<1) ^ uint64(m.Timestamp>>63)) // as AppendVarint zigzags it
	}
	return n
}

// stringLen returns the length of appendString's record of s.
func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

// uvarintLen returns the length of binary.AppendUvarint's encoding of x.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// appendString appends s's length and bytes to b.
func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// errBadRecords is the error of decodeRecords on a BLOB it cannot read.
var errBadRecords = errors.New("sqlite: malformed message records")

// decodeRecords appends to dst the messages of a BLOB that appendRecords
// wrote: with their own rooms when withRoom is set, in room otherwise.
func decodeRecords(dst []partyline.Message, b []byte, withRoom bool, room string) ([]partyline.Message, error) {
	if len(b) == 0 || b[0] != recordsVersion {
		return dst, fmt.Errorf("%w: not of version %d", errBadRecords, recordsVersion)
	}
	r := recordReader{b: b[1:]}
	for len(r.b) > 0 && r.err == nil {
		m := partyline.Message{Room: room}
		if withRoom {
			m.Room = r.string()
		}
		m.Seq = r.uvarint()
		m.ID = r.string()
		m.Username = r.string()
		m.Content = r.string()
		if n := r.uvarint(); n > 0 {
			m.Data = r.data(n - 1)
		}
		m.Timestamp = r.varint()
		if r.err == nil {
			dst = append(dst, m)
		}
	}
	return dst, r.err
}

// recordReader reads the fields of records, keeping the first error.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b) // 0 when n <= 0
	r.skip(n)
	return v
}

func (r *recordReader) varint() int64 {
	v, n := binary.Varint(r.b)
	r.skip(n)
	return v
}

// skip moves past the n bytes a varint took, or fails for the n <= 0 of a
// varint that could not be read.
func (r *recordReader) skip(n int) {
	if n <= 0 {
		r.fail()
		return
	}
	r.b = r.b[n:]
}

// take returns the next n bytes, in r's buffer.
func (r *recordReader) take(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// data returns a copy of the next n bytes, empty but not nil for 0.
func (r *recordReader) data(n uint64) []byte { return bytes.Clone(r.take(n)) }

func (r *recordReader) string() string { return string(r.take(r.uvarint())) }

func (r *recordReader) fail() {
	if r.err == nil {
		r.err = errBadRecords
	}
	r.b = nil
}

// chunked splits messages, a room's in seq order, into chunks of at most
// maxChunk.
func chunked(messages []partyline.Message) [][]partyline.Message {
	chunks := make([][]partyline.Message, 0, (len(messages)+maxChunk-1)/maxChunk)
	for len(messages) > 0 {
		n := min(len(messages), maxChunk)
		chunks = append(chunks, messages[:n])
		messages = messages[n:]
	}
	return chunks
}
