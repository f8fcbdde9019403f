-- 0006: a large message's text in pieces (issue 11, memory). A message filed from a reader
-- (NewMessage.Body, OutboxNew.Body) whose text is larger than one piece keeps its header section in
-- body.header as before, body.text NULL, and its text in body_piece rows of exactly PieceSize bytes
-- (256 KiB; the last one shorter), seq 0, 1, …; body.pieces counts them. Filing and reading it never
-- holds the whole message. Bodies from before (and small ones) keep their text in body.text, pieces 0.
-- A body's pieces go with it (trigger), whatever drops the body row.
ALTER TABLE body ADD COLUMN pieces INTEGER NOT NULL DEFAULT 0;

CREATE TABLE body_piece (
	body_id INTEGER NOT NULL,
	seq INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (body_id, seq)
);

CREATE TRIGGER body_delete AFTER DELETE ON body BEGIN
	DELETE FROM body_piece WHERE body_id = OLD.id;
END;
