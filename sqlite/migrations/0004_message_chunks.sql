-- Messages in chunks: a row holds up to 64 of a room's messages, seqs
-- first_seq to last_seq, as records (records.go), so a move writes one
-- row and one index entry for a room's chunk instead of one for each
-- message. The log holds one row of records for each batch committed.
CREATE TABLE message_chunks (
	room      TEXT    NOT NULL,
	first_seq INTEGER NOT NULL,
	last_seq  INTEGER NOT NULL,
	messages  BLOB    NOT NULL,
	PRIMARY KEY (room, first_seq)
);

-- What an older partyline left in its log goes into messages first; then
-- migrate.go's chunkMessages writes messages into message_chunks and drops
-- it.
INSERT OR IGNORE INTO messages (room, seq, id, username, content, data, timestamp_ms)
SELECT room, seq, id, username, content, data, timestamp_ms FROM message_log ORDER BY room, seq;
INSERT INTO rooms (room, last_seq) SELECT room, max(seq) FROM message_log WHERE true GROUP BY room
ON CONFLICT (room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq);
DROP TABLE message_log;

CREATE TABLE message_log (
	pos      INTEGER PRIMARY KEY,
	messages BLOB    NOT NULL
);
