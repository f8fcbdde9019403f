package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
)

// PieceSize is the size of the pieces a large message's text is stored in (migration 0006): every
// piece but the last has exactly this size, so piece k holds the text bytes [k·PieceSize, (k+1)·PieceSize).
const PieceSize = 256 << 10

// maxStreamHeader bounds the header section of a message filed from a reader: the store looks for the
// blank line within this many bytes. A message without one there is read whole and stored in one row,
// as before migration 0006 (only a malformed message can be like that).
const maxStreamHeader = 1 << 20

// bodyRef is a stored body as the message and outbox rows need it.
type bodyRef struct {
	id     int64
	header []byte // the header section, including the blank line that ends it
	size   int64  // the whole message
}

// HeaderEnd returns the length of raw's header section including the empty line that ends it, and
// whether raw has that empty line (a prefix of a message may not reach it yet).
func HeaderEnd(raw []byte) (int, bool) {
	i := 0
	for i < len(raw) {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return len(raw), false
		}
		line := raw[i : i+j+1]
		i += j + 1
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			return i, true
		}
	}
	return len(raw), false
}

// HeaderLen returns the length of raw's header section including the empty line that ends it, or
// len(raw) if there is no empty line. The store splits every message there (header and body are kept
// apart); IMAP's BODY[HEADER] and BODY[TEXT] use the same split.
func HeaderLen(raw []byte) int {
	n, _ := HeaderEnd(raw)
	return n
}

// putMessage stores a message given as bytes (raw) or, when body is not nil, read from body.
func (tx *Tx) putMessage(raw []byte, body io.Reader) (bodyRef, error) {
	if body == nil {
		return tx.putBody(raw)
	}
	return tx.putBodyReader(body)
}

// putBody stores raw in one row (once per distinct content).
func (tx *Tx) putBody(raw []byte) (bodyRef, error) {
	hs := HeaderLen(raw)
	sum := sha256.Sum256(raw)
	ref := bodyRef{header: raw[:hs], size: int64(len(raw))}
	err := tx.queryRow(`SELECT id FROM body WHERE hash = ?`, sum[:]).Scan(&ref.id)
	if err == nil {
		return ref, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return bodyRef{}, fmt.Errorf("store: body: %w", err)
	}
	err = tx.queryRow(`INSERT INTO body (hash, header, text) VALUES (?, ?, ?) RETURNING id`,
		sum[:], raw[:hs], raw[hs:]).Scan(&ref.id)
	if err != nil {
		return bodyRef{}, fmt.Errorf("store: body: %w", err)
	}
	return ref, nil
}

// putBodyReader stores the message read from r without holding it whole: the header section in
// memory, the text in pieces of PieceSize, hashed on the way. Content-addressing still holds: when
// the bytes turn out to be stored already, the new rows are dropped (same transaction) and the
// existing body is used. A message whose text fits one piece is stored in one row (putBody). An error
// from r fails the filing: the caller's transaction rolls back and nothing of it remains.
func (tx *Tx) putBodyReader(r io.Reader) (bodyRef, error) {
	buf := make([]byte, 0, 64<<10)
	var hs int
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		var found bool
		if hs, found = HeaderEnd(buf); found {
			break
		}
		if errors.Is(err, io.EOF) {
			return tx.putBody(buf)
		}
		if err != nil {
			return bodyRef{}, fmt.Errorf("store: reading the message: %w", err)
		}
		if len(buf) > maxStreamHeader {
			rest, err := io.ReadAll(r)
			if err != nil {
				return bodyRef{}, fmt.Errorf("store: reading the message: %w", err)
			}
			return tx.putBody(append(buf, rest...))
		}
	}
	header := bytes.Clone(buf[:hs])
	// The first piece: what was read beyond the header, topped up from r.
	piece := make([]byte, PieceSize)
	n := copy(piece, buf[hs:])
	buf = nil
	m, err := io.ReadFull(r, piece[n:])
	n += m
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return tx.putBody(append(header, piece[:n]...))
	}
	if err != nil {
		return bodyRef{}, fmt.Errorf("store: reading the message: %w", err)
	}
	// A placeholder hash until the last byte is read: unique, and never a SHA-256 anyone can match.
	var tmp [sha256.Size + 1]byte
	rand.Read(tmp[:])
	ref := bodyRef{header: header, size: int64(len(header))}
	if err := tx.queryRow(`INSERT INTO body (hash, header, text, pieces) VALUES (?, ?, NULL, 0) RETURNING id`,
		tmp[:], header).Scan(&ref.id); err != nil {
		return bodyRef{}, fmt.Errorf("store: body: %w", err)
	}
	h := sha256.New()
	h.Write(header)
	seq := 0
	for {
		if n > 0 {
			h.Write(piece[:n])
			if _, err := tx.exec(`INSERT INTO body_piece (body_id, seq, data) VALUES (?, ?, ?)`, ref.id, seq, piece[:n]); err != nil {
				return bodyRef{}, fmt.Errorf("store: body piece: %w", err)
			}
			seq++
			ref.size += int64(n)
		}
		if n < PieceSize {
			break
		}
		n, err = io.ReadFull(r, piece)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return bodyRef{}, fmt.Errorf("store: reading the message: %w", err)
		}
	}
	sum := h.Sum(nil)
	var old int64
	err = tx.queryRow(`SELECT id FROM body WHERE hash = ?`, sum).Scan(&old)
	if err == nil {
		if _, err := tx.exec(`DELETE FROM body WHERE id = ?`, ref.id); err != nil { // its pieces too (trigger)
			return bodyRef{}, fmt.Errorf("store: body: %w", err)
		}
		ref.id = old
		return ref, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return bodyRef{}, fmt.Errorf("store: body: %w", err)
	}
	if _, err := tx.exec(`UPDATE body SET hash = ?, pieces = ? WHERE id = ?`, sum, seq, ref.id); err != nil {
		return bodyRef{}, fmt.Errorf("store: body: %w", err)
	}
	return ref, nil
}

// joinBody returns a whole message from its body row: header h, then text t, or the pieces when the
// body has them.
func joinBody(ctx context.Context, q querier, bodyID int64, h, t []byte, pieces int) ([]byte, error) {
	if pieces == 0 {
		raw := make([]byte, 0, len(h)+len(t))
		return append(append(raw, h...), t...), nil
	}
	rows, err := q.QueryContext(ctx, `SELECT data FROM body_piece WHERE body_id = ? ORDER BY seq`, bodyID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := append(make([]byte, 0, len(h)+pieces*PieceSize), h...)
	for rows.Next() {
		var d sql.RawBytes
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	return out, rows.Err()
}

// textRange returns the bytes [from, to) of a body's text stored in pieces.
func textRange(ctx context.Context, q querier, bodyID, from, to int64) ([]byte, error) {
	out := make([]byte, 0, max(to-from, 0))
	for k := from / PieceSize; k*PieceSize < to; k++ {
		base := k * PieceSize
		a, b := max(from, base)-base, min(to, base+PieceSize)-base
		var d []byte
		err := q.QueryRowContext(ctx, `SELECT substr(data, ?, ?) FROM body_piece WHERE body_id = ? AND seq = ?`,
			a+1, b-a, bodyID, k).Scan(&d)
		if err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	return out, nil
}

// BodyReader reads a stored message: its header section, then its text, a piece at a time for a
// message stored in pieces, each piece in a read transaction of its own (no connection is held
// between reads). A message whose body is removed while it is read (its last copy expunged) fails
// with ErrNoMessage; the body's hash is checked with every piece, so a reused row id is never read
// as this message.
type BodyReader struct {
	s      *Store
	ctx    context.Context
	id     int64
	hash   []byte
	header []byte
	size   int64
	text   []byte // an unpieced body's text
	pieces int
	off    int64  // read so far, of the whole message
	cur    []byte // the rest of the current piece
	buf    []byte // holds the current piece
	next   int    // the next piece to load
}

// Header returns the message's header section, including the blank line that ends it.
func (r *BodyReader) Header() []byte { return r.header }

// Size returns the size of the whole message.
func (r *BodyReader) Size() int64 { return r.size }

// Text skips what is left of the header section: from then on Read returns the text only.
func (r *BodyReader) Text() io.Reader {
	if hs := int64(len(r.header)); r.off < hs {
		r.off = hs
	}
	return r
}

// Read implements io.Reader.
func (r *BodyReader) Read(p []byte) (int, error) {
	hs := int64(len(r.header))
	if r.off < hs {
		n := copy(p, r.header[r.off:])
		r.off += int64(n)
		return n, nil
	}
	if r.pieces == 0 {
		t := r.off - hs
		if t >= int64(len(r.text)) {
			return 0, io.EOF
		}
		n := copy(p, r.text[t:])
		r.off += int64(n)
		return n, nil
	}
	if len(r.cur) == 0 {
		if r.next >= r.pieces {
			return 0, io.EOF
		}
		err := r.s.read(r.ctx, func(tx cachedTx) error {
			rows, err := tx.QueryContext(r.ctx, `SELECT p.data FROM body_piece p JOIN body b ON b.id = p.body_id
				WHERE p.body_id = ? AND p.seq = ? AND b.hash = ?`, r.id, r.next, r.hash)
			if err != nil {
				return err
			}
			defer rows.Close()
			if !rows.Next() {
				if err := rows.Err(); err != nil {
					return err
				}
				return ErrNoMessage
			}
			// RawBytes and one buffer for every piece: no copy per piece beyond the driver's.
			var d sql.RawBytes
			if err := rows.Scan(&d); err != nil {
				return err
			}
			r.buf = append(r.buf[:0], d...)
			r.cur = r.buf
			return rows.Close()
		})
		if err != nil {
			return 0, fmt.Errorf("store: reading message piece %d: %w", r.next, err)
		}
		r.next++
		if len(r.cur) == 0 {
			return 0, io.ErrUnexpectedEOF
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.off += int64(n)
	return n, nil
}

// openBody returns a reader of the body that query (one row: body id, hash, header, text, pieces,
// size) selects; notFound is the error when it selects none.
func (s *Store) openBody(ctx context.Context, notFound error, query string, args ...any) (*BodyReader, error) {
	r := &BodyReader{s: s, ctx: ctx}
	err := s.read(ctx, func(tx cachedTx) error {
		err := tx.QueryRowContext(ctx, query, args...).Scan(&r.id, &r.hash, &r.header, &r.text, &r.pieces, &r.size)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound
		}
		return err
	})
	if err != nil {
		if errors.Is(err, notFound) {
			return nil, err
		}
		return nil, fmt.Errorf("store: open message: %w", err)
	}
	return r, nil
}

// RawReader returns a reader of a message's bytes, for messages too large to hold (Raw reads them
// whole). The reader reads in the caller's context.
func (s *Store) RawReader(ctx context.Context, mailboxID MailboxID, uid UID) (*BodyReader, error) {
	return s.openBody(ctx, ErrNoMessage, `SELECT b.id, b.hash, coalesce(b.header, x''), b.text, b.pieces, m.size
		FROM message m JOIN body b ON b.id = m.body_id
		WHERE m.mailbox_id = ? AND m.uid = ? AND m.expunged = 0`, mailboxID, int64(uid))
}

// OutboxReader returns a reader of an outbox item's message (the outbox seals large ones from it);
// OutboxRaw reads it whole.
func (s *Store) OutboxReader(ctx context.Context, id OutboxID) (*BodyReader, error) {
	return s.openBody(ctx, ErrNoOutboxItem, `SELECT b.id, b.hash, coalesce(b.header, x''), b.text, b.pieces,
		coalesce(length(b.header), 0) + coalesce(length(b.text), 0) + `+piecesLen+`
		FROM outbox o JOIN body b ON b.id = o.body_id WHERE o.id = ?`, id)
}

// piecesLen is the SQL for the length of body b's pieces (SQLite takes a blob's length from its record
// header, without reading the blob).
const piecesLen = `coalesce((SELECT sum(length(data)) FROM body_piece WHERE body_id = b.id), 0)`
