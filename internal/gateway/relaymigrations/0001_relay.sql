-- The outbound relay queue (relayqueue.go). A message's plaintext (signed, ready to send) stays in
-- relay_msg only until every recipient row is gone (delivered or failed); secure_delete overwrites it.
CREATE TABLE relay_msg (
	id        INTEGER PRIMARY KEY,
	sender    BLOB    NOT NULL, -- the sealed sender's binary address: reports go there
	mail_from TEXT    NOT NULL, -- the claimed address: envelope sender and From
	body      BLOB    NOT NULL, -- the DKIM-signed message
	created   INTEGER NOT NULL  -- Unix ms
) STRICT;
CREATE TABLE relay_rcpt (
	msg_id       INTEGER NOT NULL REFERENCES relay_msg (id) ON DELETE CASCADE,
	rcpt         TEXT    NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL, -- Unix ms
	last_error   TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (msg_id, rcpt)
) STRICT;
CREATE INDEX relay_rcpt_due ON relay_rcpt (next_attempt);
-- Relay requests seen (SHA-256 of sender and request), kept a week: a request handed over again after
-- a crash is not sent twice.
CREATE TABLE relay_seen (
	key     BLOB PRIMARY KEY,
	expires INTEGER NOT NULL
) STRICT;
-- Messages accepted per claimed address, for the per-claim rate limit (kept an hour).
CREATE TABLE relay_sent (
	mail_from TEXT    NOT NULL,
	at        INTEGER NOT NULL
) STRICT;
CREATE INDEX relay_sent_from ON relay_sent (mail_from, at);
