-- Each room's highest seq: the writer bumps it in the transaction that
-- inserts the room's messages, so it never runs ahead of what is committed.
CREATE TABLE rooms (
	room     TEXT    PRIMARY KEY,
	last_seq INTEGER NOT NULL
) WITHOUT ROWID;

-- The retained messages of every room. data is NULL when a message has none
-- and is otherwise the application's JSON, byte for byte.
CREATE TABLE messages (
	room         TEXT    NOT NULL,
	seq          INTEGER NOT NULL,
	id           TEXT    NOT NULL,
	username     TEXT    NOT NULL,
	content      TEXT    NOT NULL,
	data         BLOB,
	timestamp_ms INTEGER NOT NULL,
	PRIMARY KEY (room, seq)
);
