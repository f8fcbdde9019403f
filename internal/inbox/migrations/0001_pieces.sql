-- The pieces of chunked messages (protocol.md §10.1) until the message is complete; see chunks.go.
-- user_version is kept at 1 as before package sqlitedb, so that an older program still opens the file.
CREATE TABLE IF NOT EXISTS piece (
	sender BLOB NOT NULL,
	msgid BLOB NOT NULL,
	idx INTEGER NOT NULL,
	count INTEGER NOT NULL,
	content BLOB NOT NULL,
	size INTEGER NOT NULL,
	replay_key BLOB NOT NULL,
	sender_addr TEXT NOT NULL,
	rcpt BLOB NOT NULL,
	expires INTEGER NOT NULL,
	PRIMARY KEY (sender, msgid, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS piece_expires ON piece (expires);
PRAGMA user_version = 1;
