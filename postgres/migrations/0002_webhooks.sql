-- The webhook outbox: one row per event and URL, deleted when the URL
-- acknowledges it. pos orders a URL's events; concurrent transactions may
-- commit their positions out of order, which is harmless because a sender
-- deletes what it acknowledged and never skips past a position.
CREATE TABLE partyline_webhook_outbox (
	pos         bigserial PRIMARY KEY,
	url         text   NOT NULL,
	recorded_ms bigint NOT NULL,
	body        bytea  NOT NULL
);
CREATE INDEX partyline_webhook_outbox_url ON partyline_webhook_outbox (url, pos);

-- Who is in which room ("" is the whole server), cluster-wide, as the
-- webhooks know it. leave_due_ms is set while a member is leaving: the
-- sweep that finds it due deletes the row and records the leave.
CREATE TABLE partyline_webhook_presence (
	room         text COLLATE "C" NOT NULL,
	username     text COLLATE "C" NOT NULL,
	leave_due_ms bigint,
	PRIMARY KEY (room, username)
);
CREATE INDEX partyline_webhook_presence_due ON partyline_webhook_presence (leave_due_ms)
	WHERE leave_due_ms IS NOT NULL;

-- Each room's number of rows in partyline_webhook_presence (not kept for
-- ""). A member's arrival and the sweep of a room's leaves update it under
-- its row lock, so they take turns, and exactly one arrival finds the room
-- empty and exactly one sweep leaves it empty. A room's row is deleted when
-- its count reaches zero.
CREATE TABLE partyline_webhook_rooms (
	room    text COLLATE "C" PRIMARY KEY,
	members integer NOT NULL
);

-- Which owner sends each URL's events, until when.
CREATE TABLE partyline_webhook_leases (
	url      text   PRIMARY KEY,
	owner    text   NOT NULL,
	until_ms bigint NOT NULL
);

-- The idempotency keys of the last 24 h and the messages each committed
-- (JSON, see internal/eventlog). result is NULL only inside the
-- transaction that claims the key, which sets it before it commits.
CREATE TABLE partyline_idempotency_keys (
	key        text   PRIMARY KEY,
	created_ms bigint NOT NULL,
	result     bytea
);
CREATE INDEX partyline_idempotency_keys_created ON partyline_idempotency_keys (created_ms);
