-- The messages committed since the writer last moved them into messages,
-- in the order they were committed. Appending here writes one table's
-- last page; the writer moves the rows into messages in bulk, sorted by
-- room, so each room's index page is written once per move rather than
-- once per message (writer.go). Open and Close move what is left.
CREATE TABLE message_log (
	pos          INTEGER PRIMARY KEY,
	room         TEXT    NOT NULL,
	seq          INTEGER NOT NULL,
	id           TEXT    NOT NULL,
	username     TEXT    NOT NULL,
	content      TEXT    NOT NULL,
	data         BLOB,
	timestamp_ms INTEGER NOT NULL
);
