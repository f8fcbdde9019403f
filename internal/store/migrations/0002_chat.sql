-- 0002: chat (protocol.md §10.3). Conversations and the membership changes of groups, the chat
-- content of outbox items, read receipts of sent chat messages, and the replay key of a delivered
-- envelope (what a read receipt names).

ALTER TABLE outbox ADD COLUMN content BLOB;
ALTER TABLE outbox_rcpt ADD COLUMN read_at INTEGER;
ALTER TABLE message ADD COLUMN envelope_key BLOB;

-- kind: 'direct' or 'group'. peer: a direct conversation's other party (an address). group_id: a
-- group's id on the wire. name and state: a group's name and its state in the wire form of
-- protocol.md §10.3 (NULL while unknown).
CREATE TABLE conversation (
	id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	peer TEXT NOT NULL DEFAULT '',
	group_id BLOB,
	name TEXT NOT NULL DEFAULT '',
	state BLOB,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
) WITHOUT ROWID;

-- A group's membership changes, each once (its key is the order of protocol.md §10.3).
CREATE TABLE conversation_change (
	conversation_id TEXT NOT NULL,
	sent INTEGER NOT NULL,
	author_key BLOB NOT NULL,
	message_id BLOB NOT NULL,
	author TEXT NOT NULL,
	content BLOB NOT NULL,
	PRIMARY KEY (conversation_id, sent, author_key, message_id)
) WITHOUT ROWID;

CREATE INDEX message_mailbox_conversation ON message (mailbox_id, conversation_id, uid) WHERE conversation_id <> '';
