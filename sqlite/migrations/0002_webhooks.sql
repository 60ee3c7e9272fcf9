-- The webhook outbox: one row per event and URL, deleted when the URL
-- acknowledges it. AUTOINCREMENT keeps pos growing even once the newest
-- rows are deleted, so a position is never handed out twice.
CREATE TABLE webhook_outbox (
	pos         INTEGER PRIMARY KEY AUTOINCREMENT,
	url         TEXT    NOT NULL,
	recorded_ms INTEGER NOT NULL,
	body        BLOB    NOT NULL
);
CREATE INDEX webhook_outbox_url ON webhook_outbox (url, pos);

-- Who is in which room ("" is the whole server), as the webhooks know it.
-- leave_due_ms is set while a member is leaving: the sweep that finds it
-- due removes the row and records the leave.
CREATE TABLE webhook_presence (
	room         TEXT NOT NULL,
	username     TEXT NOT NULL,
	leave_due_ms INTEGER,
	PRIMARY KEY (room, username)
) WITHOUT ROWID;
CREATE INDEX webhook_presence_due ON webhook_presence (leave_due_ms) WHERE leave_due_ms IS NOT NULL;

-- Which owner sends each URL's events, until when.
CREATE TABLE webhook_leases (
	url      TEXT    PRIMARY KEY,
	owner    TEXT    NOT NULL,
	until_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- The idempotency keys of the last 24 h and the messages each committed
-- (JSON, see internal/eventlog).
CREATE TABLE idempotency_keys (
	key        TEXT    PRIMARY KEY,
	created_ms INTEGER NOT NULL,
	result     BLOB    NOT NULL
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_ms);
