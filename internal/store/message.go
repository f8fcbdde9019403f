package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"net/mail"
	"strings"
	"time"
)

// Meta is a message's local metadata. It lives in columns, never in the message bytes.
type Meta struct {
	// SenderVerified is the sender address the network layer verified (signature over the envelope),
	// "" for messages that did not come through the network (APPEND, local bounces).
	SenderVerified string
	// ConversationID groups chat messages (and mail replies) into a conversation.
	ConversationID ConversationID
	// ViaTangle marks messages delivered through the tangle.
	ViaTangle bool
	// OutboxID is the outbox item this message was submitted as (its Sent copy), 0 if none.
	OutboxID OutboxID
	// EnvelopeKey is the replay key of the envelope that delivered the message (protocol.md §6), what a
	// chat read receipt names (§10.3); nil for messages that did not come through the network.
	EnvelopeKey []byte
}

// NewMessage is a message to add to a mailbox.
type NewMessage struct {
	MailboxID MailboxID
	Raw       []byte // RFC 5322 bytes, stored as given
	// Body, if not nil, is read to EOF for the message's bytes instead of Raw, within the filing
	// transaction: a large message's text is stored in pieces (PieceSize) and never held whole. A
	// read error fails the filing (nothing of it is stored).
	Body     io.Reader
	Flags    Flags     // initial flags
	Received time.Time // internal date; zero means now. Kept to the second, with its zone offset.
	Meta     Meta
}

// Appended identifies an added message: UIDVALIDITY and UID are what UIDPLUS's APPENDUID reports.
type Appended struct {
	MailboxID   MailboxID
	UIDValidity uint32
	UID         UID
	ModSeq      uint64
}

// MessageInfo is what a listing gives per message.
type MessageInfo struct {
	UID      UID
	Flags    Flags
	ModSeq   uint64
	Size     int64
	Received time.Time
}

// Message is a message's stored state, without its bytes.
type Message struct {
	MessageInfo
	MailboxID  MailboxID
	CreateSeq  uint64
	HeaderSize int64     // bytes of the header section, including the blank line that ends it
	Sent       time.Time // the Date header, zero if absent or unparseable
	Meta       Meta
}

// Append adds a message to a mailbox (IMAP APPEND, local delivery) and returns its UID.
func (s *Store) Append(ctx context.Context, m NewMessage) (Appended, error) {
	var a Appended
	err := s.Update(ctx, func(tx *Tx) (err error) {
		a, err = tx.Append(m)
		return err
	})
	return a, err
}

// Append adds a message to a mailbox within the transaction.
func (tx *Tx) Append(m NewMessage) (Appended, error) { return tx.appendRef(m, nil) }

// appendRef is Append with the message's body stored already (ref), or stored from m if ref is nil.
func (tx *Tx) appendRef(m NewMessage, ref *bodyRef) (Appended, error) {
	flags, err := m.Flags.normalize()
	if err != nil {
		return Appended{}, err
	}
	var uv, uidnext int64
	var known string
	err = tx.queryRow(`SELECT uidvalidity, uidnext, keywords FROM mailbox WHERE id = ?`, m.MailboxID).Scan(&uv, &uidnext, &known)
	if errors.Is(err, sql.ErrNoRows) {
		return Appended{}, ErrNoMailbox
	}
	if err != nil {
		return Appended{}, fmt.Errorf("store: append: %w", err)
	}
	if uidnext > math.MaxUint32 {
		return Appended{}, ErrUIDsExhausted
	}
	if ref == nil {
		b, err := tx.putMessage(m.Raw, m.Body)
		if err != nil {
			return Appended{}, err
		}
		ref = &b
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return Appended{}, err
	}
	flags.Keywords = spelled(flags.Keywords, parseKeywordsColumn(known))
	if err := tx.mergeKeywords(m.MailboxID, flags.Keywords); err != nil {
		return Appended{}, err
	}
	recv := m.Received
	if recv.IsZero() {
		recv = tx.s.now()
	}
	_, recvTZ := recv.Zone()
	var sent, sentTZ any
	if t, ok := dateHeader(ref.header); ok {
		_, off := t.Zone()
		sent, sentTZ = t.Unix(), off
	}
	var outboxID any
	if m.Meta.OutboxID != 0 {
		outboxID = m.Meta.OutboxID
	}
	_, err = tx.exec(`INSERT INTO message (mailbox_id, uid, modseq, createseq, body_id, size, header_size,
		received, received_tz, sent, sent_tz, flags, keywords, sender_verified, conversation_id, via_tangle, outbox_id,
		envelope_key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.MailboxID, uidnext, ms, ms, ref.id, ref.size, len(ref.header), recv.Unix(), recvTZ, sent, sentTZ,
		int64(flags.System), keywordsColumn(flags.Keywords), m.Meta.SenderVerified, m.Meta.ConversationID,
		m.Meta.ViaTangle, outboxID, nilIfEmpty(m.Meta.EnvelopeKey))
	if err != nil {
		return Appended{}, fmt.Errorf("store: append: %w", err)
	}
	if _, err := tx.exec(`UPDATE mailbox SET uidnext = uidnext + 1 WHERE id = ?`, m.MailboxID); err != nil {
		return Appended{}, fmt.Errorf("store: append: %w", err)
	}
	tx.emit(ChangeAdd{MailboxID: m.MailboxID, UID: UID(uidnext), ModSeq: ms, Flags: flags, Size: ref.size})
	return Appended{MailboxID: m.MailboxID, UIDValidity: uint32(uv), UID: UID(uidnext), ModSeq: ms}, nil
}

// dateHeader parses the Date header field of a header section.
func dateHeader(hdr []byte) (time.Time, bool) {
	v := parseHeader(hdr, false).raw("Date")
	if v == "" {
		return time.Time{}, false
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// ListQuery selects messages for List.
type ListQuery struct {
	UIDs         UIDSet // if non-empty, only these UIDs
	ChangedSince uint64 // if non-zero, only messages with a higher modseq (CONDSTORE CHANGEDSINCE)
}

// Listing is a consistent snapshot of (part of) a mailbox.
type Listing struct {
	UIDValidity   uint32
	UIDNext       UID
	HighestModSeq uint64 // the mailbox's
	// ModSeq is the account's LastModSeq at the snapshot: a listener subscribed before the List call
	// ignores changes with ModSeq <= this.
	ModSeq   uint64
	Messages []MessageInfo // ascending UID, expunged messages excluded
}

// List lists a mailbox's messages (UID, flags, modseq, size, internal date) in ascending UID order.
func (s *Store) List(ctx context.Context, mailboxID MailboxID, q ListQuery) (Listing, error) {
	var l Listing
	err := s.read(ctx, func(tx cachedTx) error {
		var uidnext int64
		err := tx.QueryRowContext(ctx, `SELECT m.uidvalidity, m.uidnext, m.highest_modseq, a.last_modseq
			FROM mailbox m, account a WHERE m.id = ? AND a.id = 1`, mailboxID).
			Scan(&l.UIDValidity, &uidnext, &l.HighestModSeq, &l.ModSeq)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMailbox
		}
		if err != nil {
			return fmt.Errorf("store: list: %w", err)
		}
		l.UIDNext = UID(uidnext)
		query := `SELECT uid, flags, keywords, modseq, size, received, received_tz FROM message
			WHERE mailbox_id = ? AND expunged = 0`
		args := []any{mailboxID}
		set := q.UIDs.normalize()
		filter := false
		if len(set) > 0 {
			cond, cargs, exact := uidCond("uid", set)
			query += " AND " + cond
			args = append(args, cargs...)
			filter = !exact
		}
		if q.ChangedSince > 0 {
			query += " AND modseq > ?"
			args = append(args, clampU64(q.ChangedSince))
		}
		rows, err := tx.QueryContext(ctx, query+" ORDER BY uid", args...)
		if err != nil {
			return fmt.Errorf("store: list: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var mi MessageInfo
			var uid, flags, recv int64
			var kw string
			var tz int
			if err := rows.Scan(&uid, &flags, &kw, &mi.ModSeq, &mi.Size, &recv, &tz); err != nil {
				return fmt.Errorf("store: list: %w", err)
			}
			mi.UID = UID(uid)
			if filter && !set.containsNormalized(mi.UID) {
				continue
			}
			mi.Flags = Flags{System: SystemFlags(flags), Keywords: parseKeywordsColumn(kw)}
			mi.Received = unixZone(recv, tz)
			l.Messages = append(l.Messages, mi)
		}
		return rows.Err()
	})
	return l, err
}

// unixZone returns the time at Unix second sec in a fixed zone with the given offset.
func unixZone(sec int64, offset int) time.Time {
	if offset == 0 {
		return time.Unix(sec, 0).UTC()
	}
	return time.Unix(sec, 0).In(time.FixedZone("", offset))
}

// Message returns a message's stored state.
func (s *Store) Message(ctx context.Context, mailboxID MailboxID, uid UID) (Message, error) {
	var m Message
	err := s.read(ctx, func(tx cachedTx) error {
		var flags, recv int64
		var kw string
		var recvTZ int
		var sent, sentTZ, outbox sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT flags, keywords, modseq, createseq, size, header_size,
			received, received_tz, sent, sent_tz, sender_verified, conversation_id, via_tangle, outbox_id, envelope_key
			FROM message WHERE mailbox_id = ? AND uid = ? AND expunged = 0`, mailboxID, int64(uid)).
			Scan(&flags, &kw, &m.ModSeq, &m.CreateSeq, &m.Size, &m.HeaderSize, &recv, &recvTZ, &sent, &sentTZ,
				&m.Meta.SenderVerified, &m.Meta.ConversationID, &m.Meta.ViaTangle, &outbox, &m.Meta.EnvelopeKey)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMessage
		}
		if err != nil {
			return fmt.Errorf("store: message: %w", err)
		}
		m.MailboxID, m.UID = mailboxID, uid
		m.Flags = Flags{System: SystemFlags(flags), Keywords: parseKeywordsColumn(kw)}
		m.Received = unixZone(recv, recvTZ)
		if sent.Valid {
			m.Sent = unixZone(sent.Int64, int(sentTZ.Int64))
		}
		m.Meta.OutboxID = OutboxID(outbox.Int64)
		return nil
	})
	return m, err
}

// Raw returns a message's bytes.
func (s *Store) Raw(ctx context.Context, mailboxID MailboxID, uid UID) ([]byte, error) {
	var raw []byte
	err := s.read(ctx, func(tx cachedTx) error {
		var h, t []byte
		var bodyID int64
		var pieces int
		err := tx.QueryRowContext(ctx, `SELECT b.id, b.header, b.text, b.pieces FROM message m JOIN body b ON b.id = m.body_id
			WHERE m.mailbox_id = ? AND m.uid = ? AND m.expunged = 0`, mailboxID, int64(uid)).Scan(&bodyID, &h, &t, &pieces)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMessage
		}
		if err != nil {
			return fmt.Errorf("store: raw: %w", err)
		}
		raw, err = joinBody(ctx, tx, bodyID, h, t, pieces)
		if err != nil {
			return fmt.Errorf("store: raw: %w", err)
		}
		return nil
	})
	return raw, err
}

// RawRange returns up to length bytes of a message starting at offset (fewer at the end of the
// message, none past it). IMAP partial fetches (BODY[]<offset.length>) use it.
func (s *Store) RawRange(ctx context.Context, mailboxID MailboxID, uid UID, offset, length int64) ([]byte, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("store: raw range: negative offset or length")
	}
	var out []byte
	err := s.read(ctx, func(tx cachedTx) error {
		var hs, size, bodyID int64
		var pieces int
		err := tx.QueryRowContext(ctx, `SELECT m.header_size, m.size, m.body_id, b.pieces FROM message m
			JOIN body b ON b.id = m.body_id
			WHERE m.mailbox_id = ? AND m.uid = ? AND m.expunged = 0`, mailboxID, int64(uid)).Scan(&hs, &size, &bodyID, &pieces)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMessage
		}
		if err != nil {
			return fmt.Errorf("store: raw range: %w", err)
		}
		end := min(size, offset+length)
		if offset >= end {
			out = []byte{}
			return nil
		}
		// Piece from the header: [offset, min(end, hs)); from the text: [max(offset, hs), end) - hs.
		hFrom, hTo := offset, min(end, hs)
		tFrom, tTo := max(offset, hs)-hs, end-hs
		var h, t []byte
		if pieces > 0 {
			// The text lives in pieces: its column is NULL and the range is cut from the pieces.
			tFrom = tTo
		}
		err = tx.QueryRowContext(ctx, `SELECT
			CASE WHEN ? < ? THEN substr(header, ?, ?) ELSE x'' END,
			CASE WHEN ? < ? THEN substr(text, ?, ?) ELSE x'' END
			FROM body WHERE id = ?`,
			hFrom, hTo, hFrom+1, hTo-hFrom,
			tFrom, tTo, tFrom+1, tTo-tFrom, bodyID).Scan(&h, &t)
		if err != nil {
			return fmt.Errorf("store: raw range: %w", err)
		}
		if pieces > 0 && end > hs {
			if t, err = textRange(ctx, tx, bodyID, max(offset, hs)-hs, end-hs); err != nil {
				return fmt.Errorf("store: raw range: %w", err)
			}
		}
		out = make([]byte, 0, len(h)+len(t))
		out = append(append(out, h...), t...)
		return nil
	})
	return out, err
}

// RawHeader returns a message's header section, including the blank line that ends it.
func (s *Store) RawHeader(ctx context.Context, mailboxID MailboxID, uid UID) ([]byte, error) {
	var h []byte
	err := s.read(ctx, func(tx cachedTx) error {
		err := tx.QueryRowContext(ctx, `SELECT b.header FROM message m JOIN body b ON b.id = m.body_id
			WHERE m.mailbox_id = ? AND m.uid = ? AND m.expunged = 0`, mailboxID, int64(uid)).Scan(&h)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMessage
		}
		if err != nil {
			return fmt.Errorf("store: header: %w", err)
		}
		return nil
	})
	if h == nil && err == nil {
		h = []byte{}
	}
	return h, err
}

// Header returns a message's parsed header fields (unfolded, RFC 2047-decoded).
func (s *Store) Header(ctx context.Context, mailboxID MailboxID, uid UID) (Header, error) {
	h, err := s.RawHeader(ctx, mailboxID, uid)
	if err != nil {
		return nil, err
	}
	return ParseHeader(h), nil
}

// msgRow is a message row as copy, move, store and expunge need it.
type msgRow struct {
	id, uid, bodyID, size, hs, recv, recvTZ, flags int64
	modseq                                         uint64
	sent, sentTZ, outbox                           sql.NullInt64
	kw, sender, conv                               string
	via                                            bool
	envKey                                         []byte
}

// selectRows returns the live messages of a mailbox in the UID set (all if all is true), by UID.
func (tx *Tx) selectRows(mailboxID MailboxID, uids UIDSet, all bool) ([]msgRow, error) {
	q := `SELECT id, uid, body_id, size, header_size, received, received_tz, flags, modseq, sent, sent_tz,
		outbox_id, keywords, sender_verified, conversation_id, via_tangle, envelope_key
		FROM message WHERE mailbox_id = ? AND expunged = 0`
	args := []any{mailboxID}
	set := uids.normalize()
	filter := false
	if !all {
		if len(set) == 0 {
			return nil, nil
		}
		cond, cargs, exact := uidCond("uid", set)
		q += " AND " + cond
		args = append(args, cargs...)
		filter = !exact
	}
	rows, err := tx.query(q+" ORDER BY uid", args...)
	if err != nil {
		return nil, fmt.Errorf("store: select messages: %w", err)
	}
	defer rows.Close()
	var out []msgRow
	for rows.Next() {
		var r msgRow
		if err := rows.Scan(&r.id, &r.uid, &r.bodyID, &r.size, &r.hs, &r.recv, &r.recvTZ, &r.flags, &r.modseq,
			&r.sent, &r.sentTZ, &r.outbox, &r.kw, &r.sender, &r.conv, &r.via, &r.envKey); err != nil {
			return nil, fmt.Errorf("store: select messages: %w", err)
		}
		if filter && !set.containsNormalized(UID(r.uid)) {
			continue
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (r msgRow) flagSet() Flags {
	return Flags{System: SystemFlags(r.flags), Keywords: parseKeywordsColumn(r.kw)}
}

// UIDPair maps a source message to its copy.
type UIDPair struct {
	Src, Dst UID
}

// CopyResult is the outcome of Copy or Move: UIDPLUS's COPYUID data.
type CopyResult struct {
	UIDValidity uint32    // of the destination
	Pairs       []UIDPair // ascending source UID
	ModSeq      uint64    // 0 if no message was copied
}

// Copy copies the messages with the given UIDs (missing ones are skipped) to another mailbox (or the
// same one), keeping flags, keywords, internal date and metadata; the bytes are shared, not copied.
func (s *Store) Copy(ctx context.Context, srcID MailboxID, uids UIDSet, dstID MailboxID) (CopyResult, error) {
	var r CopyResult
	err := s.Update(ctx, func(tx *Tx) (err error) {
		r, err = tx.Copy(srcID, uids, dstID)
		return err
	})
	return r, err
}

// Move is Copy followed by expunging the originals, atomically (RFC 6851).
func (s *Store) Move(ctx context.Context, srcID MailboxID, uids UIDSet, dstID MailboxID) (CopyResult, error) {
	var r CopyResult
	err := s.Update(ctx, func(tx *Tx) (err error) {
		r, err = tx.Move(srcID, uids, dstID)
		return err
	})
	return r, err
}

// Copy is Store.Copy within the transaction.
func (tx *Tx) Copy(srcID MailboxID, uids UIDSet, dstID MailboxID) (CopyResult, error) {
	if len(uids) == 0 {
		return tx.copyMessages(srcID, UIDSet{}, dstID, false)
	}
	return tx.copyMessages(srcID, uids, dstID, false)
}

// Move is Store.Move within the transaction.
func (tx *Tx) Move(srcID MailboxID, uids UIDSet, dstID MailboxID) (CopyResult, error) {
	if len(uids) == 0 {
		return tx.copyMessages(srcID, UIDSet{}, dstID, true)
	}
	return tx.copyMessages(srcID, uids, dstID, true)
}

// copyMessages copies (and with move, expunges) the messages in uids, or all if uids is nil.
func (tx *Tx) copyMessages(srcID MailboxID, uids UIDSet, dstID MailboxID, move bool) (CopyResult, error) {
	if move && srcID == dstID {
		return CopyResult{}, ErrSameMailbox
	}
	var res CopyResult
	var uv, uidnext int64
	for _, id := range []MailboxID{srcID, dstID} {
		err := tx.queryRow(`SELECT uidvalidity, uidnext FROM mailbox WHERE id = ?`, id).Scan(&uv, &uidnext)
		if errors.Is(err, sql.ErrNoRows) {
			return CopyResult{}, ErrNoMailbox
		}
		if err != nil {
			return CopyResult{}, fmt.Errorf("store: copy: %w", err)
		}
	}
	res.UIDValidity = uint32(uv)
	rows, err := tx.selectRows(srcID, uids, uids == nil)
	if err != nil || len(rows) == 0 {
		return res, err
	}
	if uidnext+int64(len(rows))-1 > math.MaxUint32 {
		return CopyResult{}, ErrUIDsExhausted
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return CopyResult{}, err
	}
	res.ModSeq = ms
	var kw []string
	for _, r := range rows {
		kw = append(kw, parseKeywordsColumn(r.kw)...)
	}
	if err := tx.mergeKeywords(dstID, kw); err != nil {
		return CopyResult{}, err
	}
	for i, r := range rows {
		uid := uidnext + int64(i)
		_, err := tx.exec(`INSERT INTO message (mailbox_id, uid, modseq, createseq, body_id, size, header_size,
			received, received_tz, sent, sent_tz, flags, keywords, sender_verified, conversation_id, via_tangle,
			outbox_id, envelope_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			dstID, uid, ms, ms, r.bodyID, r.size, r.hs, r.recv, r.recvTZ, r.sent, r.sentTZ, r.flags, r.kw,
			r.sender, r.conv, r.via, r.outbox, r.envKey)
		if err != nil {
			return CopyResult{}, fmt.Errorf("store: copy: %w", err)
		}
		res.Pairs = append(res.Pairs, UIDPair{Src: UID(r.uid), Dst: UID(uid)})
		tx.emit(ChangeAdd{MailboxID: dstID, UID: UID(uid), ModSeq: ms, Flags: r.flagSet(), Size: r.size})
	}
	if _, err := tx.exec(`UPDATE mailbox SET uidnext = ? WHERE id = ?`, uidnext+int64(len(rows)), dstID); err != nil {
		return CopyResult{}, fmt.Errorf("store: copy: %w", err)
	}
	if move {
		if err := tx.tombstone(srcID, rows, ms); err != nil {
			return CopyResult{}, err
		}
	}
	return res, nil
}

// tombstone marks rows expunged at modseq ms and broadcasts the expunge.
func (tx *Tx) tombstone(mailboxID MailboxID, rows []msgRow, ms uint64) error {
	uids := make([]UID, 0, len(rows))
	for _, r := range rows {
		if _, err := tx.exec(`UPDATE message SET expunged = 1, modseq = ?, body_id = NULL WHERE id = ?`, ms, r.id); err != nil {
			return fmt.Errorf("store: expunge: %w", err)
		}
		tx.maybeOrphaned(r.bodyID)
		uids = append(uids, UID(r.uid))
	}
	tx.emit(ChangeExpunge{MailboxID: mailboxID, UIDs: uids, ModSeq: ms})
	return nil
}

// FlagOp is how StoreFlags combines flags with a message's flags.
type FlagOp int

// Flag operations (IMAP STORE FLAGS, +FLAGS, -FLAGS).
const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// FlagChange is a STORE request.
type FlagChange struct {
	Op    FlagOp
	Flags Flags
	// UnchangedSince, if set, makes the store conditional (CONDSTORE, RFC 7162 §3.1.3): messages whose
	// modseq is above it are not changed and are reported in StoreResult.Modified.
	UnchangedSince *uint64
}

// FlagResult is a message's flags after a STORE.
type FlagResult struct {
	UID     UID
	Flags   Flags
	ModSeq  uint64
	Changed bool // false when the store was a no-op for this message (its modseq did not change)
}

// StoreResult is the outcome of StoreFlags. Whether a client sees FETCH responses (.SILENT) is the
// front door's business; the result always holds the flags.
type StoreResult struct {
	ModSeq   uint64       // the modseq of the changes, 0 if nothing changed
	Messages []FlagResult // every matched message not in Modified, ascending UID
	Modified []UID        // failed UNCHANGEDSINCE
}

// StoreFlags changes the flags of the messages with the given UIDs (missing ones are skipped). A
// message's modseq changes only if its flags really change, and a STORE that changes nothing takes no
// modseq and broadcasts nothing.
func (s *Store) StoreFlags(ctx context.Context, mailboxID MailboxID, uids UIDSet, fc FlagChange) (StoreResult, error) {
	var r StoreResult
	err := s.Update(ctx, func(tx *Tx) (err error) {
		r, err = tx.StoreFlags(mailboxID, uids, fc)
		return err
	})
	return r, err
}

// StoreFlags is Store.StoreFlags within the transaction.
func (tx *Tx) StoreFlags(mailboxID MailboxID, uids UIDSet, fc FlagChange) (StoreResult, error) {
	flags, err := fc.Flags.normalize()
	if err != nil {
		return StoreResult{}, err
	}
	mb, err := tx.MailboxByID(mailboxID)
	if err != nil {
		return StoreResult{}, err
	}
	flags.Keywords = spelled(flags.Keywords, mb.Keywords)
	rows, err := tx.selectRows(mailboxID, uids, false)
	if err != nil {
		return StoreResult{}, err
	}
	var res StoreResult
	type upd struct {
		i     int
		flags Flags
	}
	var updates []upd
	var newKW []string
	for _, r := range rows {
		if fc.UnchangedSince != nil && r.modseq > *fc.UnchangedSince {
			res.Modified = append(res.Modified, UID(r.uid))
			continue
		}
		old := r.flagSet()
		var nf Flags
		switch fc.Op {
		case FlagsSet:
			nf = flags
		case FlagsAdd:
			nf = old.union(flags)
		case FlagsRemove:
			nf = old.minus(flags)
		default:
			return StoreResult{}, fmt.Errorf("store: unknown flag operation %d", fc.Op)
		}
		res.Messages = append(res.Messages, FlagResult{UID: UID(r.uid), Flags: nf, ModSeq: r.modseq})
		if !nf.Equal(old) {
			updates = append(updates, upd{len(res.Messages) - 1, nf})
			newKW = append(newKW, nf.Keywords...)
		}
	}
	if len(updates) == 0 {
		return res, nil
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return StoreResult{}, err
	}
	res.ModSeq = ms
	if err := tx.mergeKeywords(mailboxID, newKW); err != nil {
		return StoreResult{}, err
	}
	for _, u := range updates {
		fr := &res.Messages[u.i]
		_, err := tx.exec(`UPDATE message SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?`,
			int64(u.flags.System), keywordsColumn(u.flags.Keywords), ms, mailboxID, int64(fr.UID))
		if err != nil {
			return StoreResult{}, fmt.Errorf("store: store flags: %w", err)
		}
		fr.ModSeq, fr.Changed = ms, true
		tx.emit(ChangeFlags{MailboxID: mailboxID, UID: fr.UID, ModSeq: ms, Flags: u.flags})
	}
	return res, nil
}

// Expunged is the outcome of an expunge.
type Expunged struct {
	UIDs   []UID  // ascending
	ModSeq uint64 // 0 if nothing was expunged
}

// Expunge removes every message with \Deleted from the mailbox (IMAP EXPUNGE, CLOSE), leaving
// tombstones.
func (s *Store) Expunge(ctx context.Context, mailboxID MailboxID) (Expunged, error) {
	var e Expunged
	err := s.Update(ctx, func(tx *Tx) (err error) {
		e, err = tx.expunge(mailboxID, nil, true)
		return err
	})
	return e, err
}

// ExpungeUIDs removes the messages with \Deleted among uids (UIDPLUS UID EXPUNGE).
func (s *Store) ExpungeUIDs(ctx context.Context, mailboxID MailboxID, uids UIDSet) (Expunged, error) {
	var e Expunged
	err := s.Update(ctx, func(tx *Tx) (err error) {
		e, err = tx.expunge(mailboxID, uids, false)
		return err
	})
	return e, err
}

// Expunge is Store.Expunge within the transaction.
func (tx *Tx) Expunge(mailboxID MailboxID) (Expunged, error) { return tx.expunge(mailboxID, nil, true) }

func (tx *Tx) expunge(mailboxID MailboxID, uids UIDSet, all bool) (Expunged, error) {
	if _, err := tx.MailboxByID(mailboxID); err != nil {
		return Expunged{}, err
	}
	rows, err := tx.selectRows(mailboxID, uids, all)
	if err != nil {
		return Expunged{}, err
	}
	var del []msgRow
	for _, r := range rows {
		if SystemFlags(r.flags)&FlagDeleted != 0 {
			del = append(del, r)
		}
	}
	if len(del) == 0 {
		return Expunged{}, nil
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return Expunged{}, err
	}
	if err := tx.tombstone(mailboxID, del, ms); err != nil {
		return Expunged{}, err
	}
	e := Expunged{ModSeq: ms}
	for _, r := range del {
		e.UIDs = append(e.UIDs, UID(r.uid))
	}
	return e, nil
}

// Vanished returns the UIDs expunged from the mailbox after modseq since (QRESYNC VANISHED), or
// ErrHistoryGone if tombstones from after since may have been purged.
func (s *Store) Vanished(ctx context.Context, mailboxID MailboxID, since uint64) ([]UID, error) {
	var out []UID
	err := s.read(ctx, func(tx cachedTx) error {
		var hdms uint64
		if err := tx.QueryRowContext(ctx, `SELECT highest_deleted_modseq FROM account WHERE id = 1`).Scan(&hdms); err != nil {
			return fmt.Errorf("store: vanished: %w", err)
		}
		if since < hdms {
			return ErrHistoryGone
		}
		rows, err := tx.QueryContext(ctx, `SELECT uid FROM message WHERE mailbox_id = ? AND expunged = 1 AND modseq > ?
			ORDER BY uid`, mailboxID, clampU64(since))
		if err != nil {
			return fmt.Errorf("store: vanished: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var u int64
			if err := rows.Scan(&u); err != nil {
				return err
			}
			out = append(out, UID(u))
		}
		return rows.Err()
	})
	return out, err
}

// PurgeTombstones deletes tombstones with modseq <= upTo and raises HighestDeletedModSeq to the highest
// modseq among them. It returns how many it deleted. UIDs stay unused: UIDNEXT never goes back.
func (s *Store) PurgeTombstones(ctx context.Context, upTo uint64) (int64, error) {
	var n int64
	err := s.Update(ctx, func(tx *Tx) error {
		var high sql.NullInt64
		if err := tx.queryRow(`SELECT max(modseq) FROM message WHERE expunged = 1 AND modseq <= ?`, clampU64(upTo)).Scan(&high); err != nil {
			return fmt.Errorf("store: purge: %w", err)
		}
		if !high.Valid {
			return nil
		}
		res, err := tx.exec(`DELETE FROM message WHERE expunged = 1 AND modseq <= ?`, clampU64(upTo))
		if err != nil {
			return fmt.Errorf("store: purge: %w", err)
		}
		n, _ = res.RowsAffected()
		_, err = tx.exec(`UPDATE account SET highest_deleted_modseq = max(highest_deleted_modseq, ?) WHERE id = 1`, high.Int64)
		if err != nil {
			return fmt.Errorf("store: purge: %w", err)
		}
		return nil
	})
	return n, err
}

// lowerContains reports whether hay contains needle, ignoring case; needle must be lower case.
func lowerContains(hay, needleLower string) bool {
	return strings.Contains(strings.ToLower(hay), needleLower)
}
