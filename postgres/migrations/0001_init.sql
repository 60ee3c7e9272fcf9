-- Tables carry a partyline_ prefix: a PostgreSQL database is often shared
-- with the application's own tables.

-- Each room's highest seq. An append bumps it with a row lock held until its
-- transaction commits, so concurrent appends from any node wait in turn and
-- a committed seq implies every lower one is committed.
CREATE TABLE partyline_rooms (
	room     text COLLATE "C" PRIMARY KEY,
	last_seq bigint NOT NULL
);

-- The retained messages of every room. content and data are bytea: text
-- cannot hold the NUL character a JSON string may carry, and data must come
-- back byte for byte (jsonb would reorder it).
CREATE TABLE partyline_messages (
	room         text COLLATE "C" NOT NULL,
	seq          bigint NOT NULL,
	id           text   NOT NULL,
	username     text   NOT NULL,
	content      bytea  NOT NULL,
	data         bytea,
	timestamp_ms bigint NOT NULL,
	PRIMARY KEY (room, seq)
);
