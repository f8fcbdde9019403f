-- 0001: the account's mailboxes, messages, bodies, outbox, replay keys and contacts.
-- Times: message dates in Unix seconds plus the zone offset in seconds east of UTC;
-- outbox, replay and contact times in Unix milliseconds.

-- The single account row: the account-wide modification sequence (one value per write
-- transaction that changed anything), the highest modseq of tombstones that were purged
-- (history before it is incomplete), and the last UIDVALIDITY handed out.
CREATE TABLE account (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	last_modseq INTEGER NOT NULL,
	highest_deleted_modseq INTEGER NOT NULL,
	last_uidvalidity INTEGER NOT NULL
);
INSERT INTO account (id, last_modseq, highest_deleted_modseq, last_uidvalidity) VALUES (1, 0, 0, 0);

-- Mailboxes. messages/unseen/deleted/size count live (not expunged) messages and are kept
-- by the message triggers below; highest_modseq likewise. Ids are never reused (AUTOINCREMENT):
-- a session holding the id of a deleted mailbox must not find a new one under it.
CREATE TABLE mailbox (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	role TEXT NOT NULL DEFAULT '',
	uidvalidity INTEGER NOT NULL,
	uidnext INTEGER NOT NULL DEFAULT 1,
	highest_modseq INTEGER NOT NULL,
	createseq INTEGER NOT NULL,
	keywords TEXT NOT NULL DEFAULT '',
	messages INTEGER NOT NULL DEFAULT 0,
	unseen INTEGER NOT NULL DEFAULT 0,
	deleted INTEGER NOT NULL DEFAULT 0,
	size INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX mailbox_role ON mailbox (role) WHERE role <> '';

-- Subscriptions are by name and may name mailboxes that do not exist (RFC 3501 §6.3.6).
CREATE TABLE subscription (
	name TEXT PRIMARY KEY
) WITHOUT ROWID;

-- Message bytes, content-addressed (SHA-256 of the whole message), split at the end of
-- the header so header reads and header searches do not load the body.
CREATE TABLE body (
	id INTEGER PRIMARY KEY,
	hash BLOB NOT NULL UNIQUE,
	header BLOB,
	text BLOB
);

CREATE TABLE message (
	id INTEGER PRIMARY KEY,
	mailbox_id INTEGER NOT NULL REFERENCES mailbox (id),
	uid INTEGER NOT NULL,
	modseq INTEGER NOT NULL,
	createseq INTEGER NOT NULL,
	expunged INTEGER NOT NULL DEFAULT 0,
	body_id INTEGER REFERENCES body (id),
	size INTEGER NOT NULL,
	header_size INTEGER NOT NULL,
	received INTEGER NOT NULL,
	received_tz INTEGER NOT NULL,
	sent INTEGER,
	sent_tz INTEGER,
	flags INTEGER NOT NULL DEFAULT 0,
	keywords TEXT NOT NULL DEFAULT '',
	sender_verified TEXT NOT NULL DEFAULT '',
	conversation_id TEXT NOT NULL DEFAULT '',
	via_tangle INTEGER NOT NULL DEFAULT 0,
	outbox_id INTEGER,
	UNIQUE (mailbox_id, uid)
);
CREATE INDEX message_mailbox_modseq ON message (mailbox_id, modseq);
CREATE INDEX message_body ON message (body_id) WHERE body_id IS NOT NULL;
CREATE INDEX message_conversation ON message (conversation_id) WHERE conversation_id <> '';

-- Flag bits: 1 \Seen, 2 \Answered, 4 \Flagged, 8 \Deleted, 16 \Draft.
CREATE TRIGGER message_insert AFTER INSERT ON message WHEN NEW.expunged = 0 BEGIN
	UPDATE mailbox SET
		messages = messages + 1,
		unseen = unseen + ((NEW.flags & 1) = 0),
		deleted = deleted + ((NEW.flags & 8) <> 0),
		size = size + NEW.size,
		highest_modseq = max(highest_modseq, NEW.modseq)
	WHERE id = NEW.mailbox_id;
END;

CREATE TRIGGER message_update AFTER UPDATE OF flags, expunged, modseq ON message BEGIN
	UPDATE mailbox SET
		messages = messages - (OLD.expunged = 0) + (NEW.expunged = 0),
		unseen = unseen - (OLD.expunged = 0 AND (OLD.flags & 1) = 0)
			+ (NEW.expunged = 0 AND (NEW.flags & 1) = 0),
		deleted = deleted - (OLD.expunged = 0 AND (OLD.flags & 8) <> 0)
			+ (NEW.expunged = 0 AND (NEW.flags & 8) <> 0),
		size = size - (CASE WHEN OLD.expunged = 0 THEN OLD.size ELSE 0 END)
			+ (CASE WHEN NEW.expunged = 0 THEN NEW.size ELSE 0 END),
		highest_modseq = max(highest_modseq, NEW.modseq)
	WHERE id = NEW.mailbox_id;
END;

CREATE TRIGGER message_delete AFTER DELETE ON message WHEN OLD.expunged = 0 BEGIN
	UPDATE mailbox SET
		messages = messages - 1,
		unseen = unseen - ((OLD.flags & 1) = 0),
		deleted = deleted - ((OLD.flags & 8) <> 0),
		size = size - OLD.size
	WHERE id = OLD.mailbox_id;
END;

-- Outbox: one item per submitted message, one row per recipient.
CREATE TABLE outbox (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	body_id INTEGER NOT NULL UNIQUE REFERENCES body (id),
	mail_from TEXT NOT NULL,
	created INTEGER NOT NULL,
	sent_mailbox_id INTEGER,
	sent_uid INTEGER
);

CREATE TABLE outbox_rcpt (
	outbox_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
	rcpt TEXT NOT NULL,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error TEXT NOT NULL DEFAULT '',
	envelope BLOB,
	envelope_key BLOB,
	block_ids BLOB,
	receipt_at INTEGER,
	updated INTEGER NOT NULL,
	PRIMARY KEY (outbox_id, rcpt)
) WITHOUT ROWID;
CREATE INDEX outbox_rcpt_due ON outbox_rcpt (next_attempt)
	WHERE state IN ('pending', 'sealed', 'published');
CREATE UNIQUE INDEX outbox_rcpt_envelope_key ON outbox_rcpt (envelope_key)
	WHERE envelope_key IS NOT NULL;

-- Replay keys of envelopes already filed (protocol.md §6, opening step 5).
CREATE TABLE replay_key (
	key BLOB PRIMARY KEY,
	expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX replay_key_expires ON replay_key (expires);

-- Contacts: petname (unique, case-insensitively via petname_key) to address.
CREATE TABLE contact (
	petname_key TEXT PRIMARY KEY,
	petname TEXT NOT NULL,
	address TEXT NOT NULL,
	created INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX contact_address ON contact (address);
