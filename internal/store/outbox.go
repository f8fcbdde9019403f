package store

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// RcptState is the delivery state of one recipient of an outbox item.
type RcptState string

// Recipient states. Pending → Sealed → Published → Delivered is the normal path; Published → Delayed
// when the message's lifetime ends without a receipt (a delay notice was filed, protocol.md §10.2 sender
// rule 3), Delayed → Delivered by a receipt in the grace period or → Failed after it. Failed is final
// except that a late receipt still moves it to Delivered. See UpdateRecipient for every transition.
const (
	RcptPending   RcptState = "pending"   // waiting to be sealed
	RcptSealed    RcptState = "sealed"    // envelope made and stored, not yet published
	RcptPublished RcptState = "published" // blocks published, waiting for the receipt
	RcptDelayed   RcptState = "delayed"   // lifetime over, delay notice filed, receipts accepted until NextAttempt
	RcptDelivered RcptState = "delivered" // receipt received
	RcptFailed    RcptState = "failed"    // given up, with a reason
)

// Final reports whether no more work is due for a recipient in state st.
func (st RcptState) Final() bool { return st == RcptDelivered || st == RcptFailed }

var transitions = map[RcptState][]RcptState{
	RcptPending:   {RcptPending, RcptSealed, RcptFailed},
	RcptSealed:    {RcptSealed, RcptPublished, RcptDelivered, RcptFailed, RcptPending},
	RcptPublished: {RcptPublished, RcptDelayed, RcptDelivered, RcptFailed},
	RcptDelayed:   {RcptDelivered, RcptFailed},
	RcptFailed:    {RcptDelivered},
}

// EnvelopeKeySize is the size of an envelope's replay key (protocol.md §6).
const EnvelopeKeySize = 32

// OutboxNew is a message to enqueue for sending.
type OutboxNew struct {
	From  string
	Rcpts []string
	Raw   []byte // the message as submitted (the outbox removes Bcc before sealing)
	// Body, if not nil, is read to EOF for the message instead of Raw (see NewMessage.Body): a large
	// submission is filed from its spool file without being held whole.
	Body io.Reader
	// Content, if set, is what the envelopes carry instead of Raw: a chat message's content
	// (protocol.md §10.3), Raw being its form as mail (the copy filed in Chats).
	Content     []byte
	NextAttempt time.Time // first attempt; zero means now
	Created     time.Time // the item's creation time (kept to the millisecond); zero means now
}

// OutboxItem is a submitted message and its recipients.
type OutboxItem struct {
	ID            OutboxID
	From          string
	Created       time.Time
	Size          int64
	SentMailboxID MailboxID // where the Sent copy was filed (0 if none); the copy may since have moved
	SentUID       UID
	Rcpts         []OutboxRcpt // by recipient
}

// OutboxRcpt is one recipient's delivery state.
type OutboxRcpt struct {
	OutboxID    OutboxID
	Rcpt        string
	Addr        identity.Address // Rcpt parsed at Enqueue; the zero Address if it is not a tangle address
	State       RcptState
	Attempts    int
	NextAttempt time.Time
	LastError   string
	EnvelopeKey []byte     // set from Sealed on
	Envelope    []byte     // the sealed envelope, set from Sealed on: republishing never reseals
	BlockIDs    [][32]byte // the blocks that carry the envelope, from Published on
	ReceiptAt   time.Time  // when the receipt arrived (Delivered)
	ReadAt      time.Time  // when a chat read receipt arrived (protocol.md §10.3), zero if none
	Updated     time.Time
}

// OutboxID names an outbox item (the outbox table's id). Ids are never reused.
type OutboxID int64

// Submission is a message submitted by the user (SMTP submission, web compose, chat).
type Submission struct {
	OutboxNew
	MailboxID MailboxID // where the sent copy goes; 0 means the Sent mailbox (chat uses Chats)
	Flags     Flags     // flags of the sent copy; \Seen is always added
	Received  time.Time // internal date of the sent copy; zero means now
	Meta      Meta      // metadata of the sent copy (OutboxID is set by Submit)
}

// Submitted is the outcome of Submit.
type Submitted struct {
	OutboxID OutboxID
	Sent     Appended // zero when Duplicate and the original copy is gone
	// Duplicate is true when the same bytes were already submitted: nothing was added, and OutboxID and
	// Sent are the original's. A client that resubmits after a lost "250 OK" gets no second send.
	Duplicate bool
}

// Submit files the sent copy and enqueues the message for sending in one transaction: once it
// returns nil, the message is durably both in Sent and in the outbox; on error, in neither.
func (s *Store) Submit(ctx context.Context, sub Submission) (Submitted, error) {
	var r Submitted
	err := s.Update(ctx, func(tx *Tx) (err error) {
		r, err = tx.Submit(sub)
		return err
	})
	return r, err
}

// Submit is Store.Submit within the transaction.
func (tx *Tx) Submit(sub Submission) (Submitted, error) {
	id, dup, ref, err := tx.enqueue(sub.OutboxNew)
	if err != nil {
		return Submitted{}, err
	}
	if dup {
		r := Submitted{OutboxID: id, Duplicate: true}
		var mbox, uid sql.NullInt64
		if err := tx.queryRow(`SELECT sent_mailbox_id, sent_uid FROM outbox WHERE id = ?`, id).Scan(&mbox, &uid); err != nil {
			return Submitted{}, fmt.Errorf("store: submit: %w", err)
		}
		var uv int64
		err := tx.queryRow(`SELECT mb.uidvalidity FROM message m JOIN mailbox mb ON mb.id = m.mailbox_id
			WHERE m.mailbox_id = ? AND m.uid = ? AND m.expunged = 0`, mbox.Int64, uid.Int64).Scan(&uv)
		if err == nil {
			r.Sent = Appended{MailboxID: MailboxID(mbox.Int64), UIDValidity: uint32(uv), UID: UID(uid.Int64)}
		} else if !errors.Is(err, sql.ErrNoRows) {
			return Submitted{}, fmt.Errorf("store: submit: %w", err)
		}
		return r, nil
	}
	mboxID := sub.MailboxID
	if mboxID == 0 {
		m, err := tx.MailboxByRole(RoleSent)
		if err != nil {
			return Submitted{}, err
		}
		mboxID = m.ID
	}
	meta := sub.Meta
	meta.OutboxID = id
	flags := sub.Flags
	flags.System |= FlagSeen
	// The sent copy shares the body Enqueue stored (a Body reader can be read only once).
	a, err := tx.appendRef(NewMessage{MailboxID: mboxID, Flags: flags, Received: sub.Received, Meta: meta}, &ref)
	if err != nil {
		return Submitted{}, err
	}
	if _, err := tx.exec(`UPDATE outbox SET sent_mailbox_id = ?, sent_uid = ? WHERE id = ?`, a.MailboxID, int64(a.UID), id); err != nil {
		return Submitted{}, fmt.Errorf("store: submit: %w", err)
	}
	// Enqueue's changes went out before the sent copy existed: name it in them.
	for i, c := range tx.changes {
		if co, ok := c.(ChangeOutbox); ok && co.OutboxID == id {
			co.SentMailboxID, co.SentUID = a.MailboxID, a.UID
			tx.changes[i] = co
		}
	}
	return Submitted{OutboxID: id, Sent: a}, nil
}

// Enqueue adds an outbox item with every recipient pending. If an item with the same bytes exists,
// it returns that item's id and duplicate=true and changes nothing.
func (tx *Tx) Enqueue(o OutboxNew) (id OutboxID, duplicate bool, err error) {
	id, duplicate, _, err = tx.enqueue(o)
	return id, duplicate, err
}

// enqueue is Enqueue, also returning the stored body.
func (tx *Tx) enqueue(o OutboxNew) (id OutboxID, duplicate bool, ref bodyRef, err error) {
	var rcpts []string
	for _, r := range o.Rcpts {
		r = strings.TrimSpace(r)
		if r == "" || strings.ContainsAny(r, "\r\n") {
			return 0, false, bodyRef{}, fmt.Errorf("%w: bad recipient %q", ErrInvalidOutbox, r)
		}
		rcpts = append(rcpts, r)
	}
	slices.Sort(rcpts)
	rcpts = slices.Compact(rcpts)
	if len(rcpts) == 0 || (o.Body == nil && len(o.Raw) == 0) {
		return 0, false, bodyRef{}, fmt.Errorf("%w: no recipients or empty message", ErrInvalidOutbox)
	}
	ref, err = tx.putMessage(o.Raw, o.Body)
	if err != nil {
		return 0, false, bodyRef{}, err
	}
	if ref.size == 0 {
		return 0, false, bodyRef{}, fmt.Errorf("%w: empty message", ErrInvalidOutbox)
	}
	bodyID := ref.id
	err = tx.queryRow(`SELECT id FROM outbox WHERE body_id = ?`, bodyID).Scan(&id)
	if err == nil {
		return id, true, ref, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, bodyRef{}, fmt.Errorf("store: enqueue: %w", err)
	}
	now := tx.s.now()
	next := o.NextAttempt
	if next.IsZero() {
		next = now
	}
	created := o.Created
	if created.IsZero() {
		created = now
	}
	err = tx.queryRow(`INSERT INTO outbox (body_id, mail_from, created, content) VALUES (?, ?, ?, ?) RETURNING id`,
		bodyID, o.From, created.UnixMilli(), nilIfEmpty(o.Content)).Scan(&id)
	if err != nil {
		return 0, false, bodyRef{}, fmt.Errorf("store: enqueue: %w", err)
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return 0, false, bodyRef{}, err
	}
	for _, r := range rcpts {
		_, err := tx.exec(`INSERT INTO outbox_rcpt (outbox_id, rcpt, addr, state, next_attempt, updated)
			VALUES (?, ?, coalesce(?, X''), ?, ?, ?)`, id, r, rcptAddr(r), string(RcptPending), next.UnixMilli(), now.UnixMilli())
		if err != nil {
			return 0, false, bodyRef{}, fmt.Errorf("store: enqueue: %w", err)
		}
		tx.emit(ChangeOutbox{OutboxID: id, Rcpt: r, State: RcptPending, ModSeq: ms})
	}
	return id, false, ref, nil
}

// RcptUpdate moves a recipient to a state. Allowed transitions (anything else is ErrBadTransition):
//
//	pending   → pending (reschedule), sealed, failed
//	sealed    → sealed (reschedule), published, delivered, failed, pending (drops the envelope)
//	published → published (republish, reschedule), delayed (NextAttempt: the end of the grace period),
//	            delivered, failed
//	delayed   → delivered (a receipt in the grace period), failed (the grace period is over)
//	failed    → delivered (a late receipt)
type RcptUpdate struct {
	State       RcptState
	NextAttempt time.Time  // when the recipient is next due (non-final states); zero means now
	EnvelopeKey []byte     // required when entering sealed from pending
	Envelope    []byte     // required when entering sealed from pending
	BlockIDs    [][32]byte // with published: the blocks now carrying the envelope (replaces earlier ones)
	Error       string     // the failure reason (failed) or the last transient error
	Attempt     bool       // count an attempt
}

// UpdateRecipient applies u to one recipient of an outbox item and returns its new state.
func (s *Store) UpdateRecipient(ctx context.Context, outboxID OutboxID, rcpt string, u RcptUpdate) (OutboxRcpt, error) {
	var r OutboxRcpt
	err := s.Update(ctx, func(tx *Tx) (err error) {
		r, err = tx.UpdateRecipient(outboxID, rcpt, u)
		return err
	})
	return r, err
}

// UpdateRecipient is Store.UpdateRecipient within the transaction (e.g. to mark a recipient failed in
// the same transaction that files the bounce in INBOX).
func (tx *Tx) UpdateRecipient(outboxID OutboxID, rcpt string, u RcptUpdate) (OutboxRcpt, error) {
	cur, err := scanRcpt(tx.queryRow(`SELECT `+rcptCols+` FROM outbox_rcpt WHERE outbox_id = ? AND rcpt = ?`, outboxID, rcpt))
	if err != nil {
		return OutboxRcpt{}, err
	}
	if !slices.Contains(transitions[cur.State], u.State) {
		return OutboxRcpt{}, fmt.Errorf("%w: %s → %s", ErrBadTransition, cur.State, u.State)
	}
	now := tx.s.now()
	next := u.NextAttempt
	if next.IsZero() {
		next = now
	}
	r := cur
	r.State, r.NextAttempt, r.Updated = u.State, next, now
	if u.Attempt {
		r.Attempts++
	}
	if u.Error != "" || u.State == RcptFailed {
		r.LastError = u.Error
	}
	switch {
	case u.State == RcptSealed && cur.State == RcptPending:
		if len(u.EnvelopeKey) != EnvelopeKeySize || len(u.Envelope) == 0 {
			return OutboxRcpt{}, fmt.Errorf("%w: sealing needs the envelope and its %d-byte key", ErrInvalidOutbox, EnvelopeKeySize)
		}
		r.EnvelopeKey, r.Envelope = u.EnvelopeKey, u.Envelope
	case u.State == RcptPending:
		r.EnvelopeKey, r.Envelope, r.BlockIDs = nil, nil, nil
	case u.State == RcptPublished:
		if len(u.BlockIDs) == 0 && cur.State != RcptPublished {
			return OutboxRcpt{}, fmt.Errorf("%w: publishing needs block ids", ErrInvalidOutbox)
		}
		if len(u.BlockIDs) > 0 {
			r.BlockIDs = u.BlockIDs
		}
	case u.State == RcptDelivered:
		r.ReceiptAt = now
	}
	var receipt any
	if !r.ReceiptAt.IsZero() {
		receipt = r.ReceiptAt.UnixMilli()
	}
	var blocks []byte
	for _, b := range r.BlockIDs {
		blocks = append(blocks, b[:]...)
	}
	_, err = tx.exec(`UPDATE outbox_rcpt SET state = ?, attempts = ?, next_attempt = ?, last_error = ?,
		envelope = ?, envelope_key = ?, block_ids = ?, receipt_at = ?, updated = ?
		WHERE outbox_id = ? AND rcpt = ?`,
		string(r.State), r.Attempts, r.NextAttempt.UnixMilli(), r.LastError, nilIfEmpty(r.Envelope),
		nilIfEmpty(r.EnvelopeKey), nilIfEmpty(blocks), receipt, now.UnixMilli(), outboxID, rcpt)
	if err != nil {
		return OutboxRcpt{}, fmt.Errorf("store: update recipient: %w", err)
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return OutboxRcpt{}, err
	}
	mbox, uid, err := tx.sentCopy(outboxID)
	if err != nil {
		return OutboxRcpt{}, err
	}
	tx.emit(ChangeOutbox{OutboxID: outboxID, Rcpt: rcpt, State: r.State, ModSeq: ms, SentMailboxID: mbox, SentUID: uid})
	return r, nil
}

// sentCopy returns where an outbox item's sent copy was filed (Submit), zeros if nowhere.
func (tx *Tx) sentCopy(id OutboxID) (MailboxID, UID, error) {
	var mbox, uid int64
	err := tx.queryRow(`SELECT coalesce(sent_mailbox_id, 0), coalesce(sent_uid, 0) FROM outbox WHERE id = ?`, id).Scan(&mbox, &uid)
	if err != nil {
		return 0, 0, fmt.Errorf("store: outbox item %d: %w", id, err)
	}
	return MailboxID(mbox), UID(uid), nil
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

const rcptCols = `outbox_id, rcpt, addr, state, attempts, next_attempt, last_error, envelope, envelope_key,
	block_ids, receipt_at, updated, read_at`

// rcptAddr is the binary form (identity.Address.Binary) of recipient r, "<address>@tangle" (the domain
// in any case, protocol.md §8.1), or nil if r is not a tangle address: the outbox bounces it, with
// mail.ParseRecipient's reason.
func rcptAddr(r string) []byte {
	if !strings.Contains(r, "@") {
		return nil
	}
	a, err := identity.ParseAddress(r)
	if err != nil {
		return nil
	}
	return a.Binary()
}

// adoptRcptAddrs parses the recipients enqueued before migration 0004 (addr NULL), once, at Open.
func (tx *Tx) adoptRcptAddrs() error {
	type key struct {
		id   OutboxID
		rcpt string
	}
	rows, err := tx.query(`SELECT outbox_id, rcpt FROM outbox_rcpt WHERE addr IS NULL`)
	if err != nil {
		return fmt.Errorf("store: adopt recipients: %w", err)
	}
	var todo []key
	for rows.Next() {
		var k key
		if err := rows.Scan(&k.id, &k.rcpt); err != nil {
			rows.Close()
			return fmt.Errorf("store: adopt recipients: %w", err)
		}
		todo = append(todo, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: adopt recipients: %w", err)
	}
	for _, k := range todo {
		if _, err := tx.exec(`UPDATE outbox_rcpt SET addr = coalesce(?, X'') WHERE outbox_id = ? AND rcpt = ?`,
			rcptAddr(k.rcpt), k.id, k.rcpt); err != nil {
			return fmt.Errorf("store: adopt recipients: %w", err)
		}
	}
	return nil
}

func scanRcpt(r scanner) (OutboxRcpt, error) {
	var o OutboxRcpt
	var state string
	var next, updated int64
	var receipt, read sql.NullInt64
	var blocks, addr []byte
	err := r.Scan(&o.OutboxID, &o.Rcpt, &addr, &state, &o.Attempts, &next, &o.LastError, &o.Envelope, &o.EnvelopeKey,
		&blocks, &receipt, &updated, &read)
	if errors.Is(err, sql.ErrNoRows) {
		return OutboxRcpt{}, ErrNoOutboxItem
	}
	if err != nil {
		return OutboxRcpt{}, fmt.Errorf("store: outbox: %w", err)
	}
	if len(addr) == identity.BinarySize {
		// Validated at Enqueue (the key's point too): only the tag bits are read again. A bad version
		// leaves Addr zero, and the outbox parses Rcpt.
		if k, err := identity.ParseVersionByte(addr[0]); err == nil {
			o.Addr = identity.Address{TagBits: k, Key: ed25519.PublicKey(addr[1:])}
		}
	}
	o.State = RcptState(state)
	o.NextAttempt = time.UnixMilli(next)
	o.Updated = time.UnixMilli(updated)
	if receipt.Valid {
		o.ReceiptAt = time.UnixMilli(receipt.Int64)
	}
	if read.Valid {
		o.ReadAt = time.UnixMilli(read.Int64)
	}
	for len(blocks) >= 32 {
		o.BlockIDs = append(o.BlockIDs, [32]byte(blocks[:32]))
		blocks = blocks[32:]
	}
	return o, nil
}

func queryRcpts(ctx context.Context, q querier, query string, args ...any) ([]OutboxRcpt, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxRcpt
	for rows.Next() {
		r, err := scanRcpt(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// OutboxDue returns up to limit recipients in a non-final state whose next attempt is at or before
// now, earliest first.
func (s *Store) OutboxDue(ctx context.Context, now time.Time, limit int) ([]OutboxRcpt, error) {
	var out []OutboxRcpt
	err := s.read(ctx, func(tx cachedTx) (err error) {
		out, err = queryRcpts(ctx, tx, `SELECT `+rcptCols+` FROM outbox_rcpt
			WHERE state IN ('pending', 'sealed', 'published', 'delayed') AND next_attempt <= ?
			ORDER BY next_attempt, outbox_id, rcpt LIMIT ?`, now.UnixMilli(), limit)
		return err
	})
	return out, err
}

// OutboxByEnvelopeKey returns the recipient whose sealed envelope has the given replay key (how a
// receipt finds what it acknowledges).
func (s *Store) OutboxByEnvelopeKey(ctx context.Context, key []byte) (OutboxRcpt, error) {
	var r OutboxRcpt
	err := s.read(ctx, func(tx cachedTx) (err error) {
		r, err = scanRcpt(tx.QueryRowContext(ctx, `SELECT `+rcptCols+` FROM outbox_rcpt WHERE envelope_key = ?`, key))
		return err
	})
	return r, err
}

const outboxCols = `o.id, o.mail_from, o.created, coalesce(length(b.header), 0) + coalesce(length(b.text), 0) + ` +
	piecesLen + `, coalesce(o.sent_mailbox_id, 0), coalesce(o.sent_uid, 0)`

func scanOutbox(r scanner) (OutboxItem, error) {
	var it OutboxItem
	var created, uid int64
	err := r.Scan(&it.ID, &it.From, &created, &it.Size, &it.SentMailboxID, &uid)
	if errors.Is(err, sql.ErrNoRows) {
		return OutboxItem{}, ErrNoOutboxItem
	}
	if err != nil {
		return OutboxItem{}, fmt.Errorf("store: outbox: %w", err)
	}
	it.Created, it.SentUID = time.UnixMilli(created), UID(uid)
	return it, nil
}

// OutboxItem returns an outbox item with its recipients.
func (s *Store) OutboxItem(ctx context.Context, id OutboxID) (OutboxItem, error) {
	var it OutboxItem
	err := s.read(ctx, func(tx cachedTx) (err error) {
		it, err = scanOutbox(tx.QueryRowContext(ctx, `SELECT `+outboxCols+`
			FROM outbox o JOIN body b ON b.id = o.body_id WHERE o.id = ?`, id))
		if err != nil {
			return err
		}
		it.Rcpts, err = queryRcpts(ctx, tx, `SELECT `+rcptCols+` FROM outbox_rcpt WHERE outbox_id = ? ORDER BY rcpt`, id)
		return err
	})
	return it, err
}

// OutboxItems returns all outbox items, newest first, with their recipients.
func (s *Store) OutboxItems(ctx context.Context) ([]OutboxItem, error) {
	var items []OutboxItem
	err := s.read(ctx, func(tx cachedTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+outboxCols+` FROM outbox o JOIN body b ON b.id = o.body_id
			ORDER BY o.id DESC`)
		if err != nil {
			return fmt.Errorf("store: outbox: %w", err)
		}
		for rows.Next() {
			it, err := scanOutbox(rows)
			if err != nil {
				rows.Close()
				return err
			}
			items = append(items, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range items {
			items[i].Rcpts, err = queryRcpts(ctx, tx, `SELECT `+rcptCols+` FROM outbox_rcpt WHERE outbox_id = ?
				ORDER BY rcpt`, items[i].ID)
			if err != nil {
				return err
			}
		}
		return nil
	})
	return items, err
}

// OutboxContent returns an outbox item's Content (OutboxNew.Content), nil if it has none.
func (s *Store) OutboxContent(ctx context.Context, id OutboxID) ([]byte, error) {
	var c []byte
	err := s.read(ctx, func(tx cachedTx) error {
		err := tx.QueryRowContext(ctx, `SELECT content FROM outbox WHERE id = ?`, id).Scan(&c)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoOutboxItem
		}
		if err != nil {
			return fmt.Errorf("store: outbox content: %w", err)
		}
		return nil
	})
	return c, err
}

// MarkRecipientRead records that a recipient has read the message (a chat read receipt, protocol.md
// §10.3). It reports false if it was recorded before. The recipient's state is not changed (a read
// receipt may overtake the delivery receipt); a change is broadcast so views can update.
func (tx *Tx) MarkRecipientRead(outboxID OutboxID, rcpt string) (bool, error) {
	res, err := tx.exec(`UPDATE outbox_rcpt SET read_at = ? WHERE outbox_id = ? AND rcpt = ? AND read_at IS NULL`,
		tx.s.now().UnixMilli(), outboxID, rcpt)
	if err != nil {
		return false, fmt.Errorf("store: mark read: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return false, err
	}
	var state string
	if err := tx.queryRow(`SELECT state FROM outbox_rcpt WHERE outbox_id = ? AND rcpt = ?`, outboxID, rcpt).Scan(&state); err != nil {
		return false, fmt.Errorf("store: mark read: %w", err)
	}
	mbox, uid, err := tx.sentCopy(outboxID)
	if err != nil {
		return false, err
	}
	tx.emit(ChangeOutbox{OutboxID: outboxID, Rcpt: rcpt, State: RcptState(state), ModSeq: ms, Read: true,
		SentMailboxID: mbox, SentUID: uid})
	return true, nil
}

// MarkSentCopy adds keyword to the Sent copy of outbox item id if done reports true for every recipient
// (done nil: unconditionally): how the engines set DeliveredKeyword, ReadKeyword and E2EKeyword. An item
// without a Sent copy, or whose copy the user has since moved or deleted (StoreFlags skips UIDs that are
// gone; a mailbox that is gone is no error), is left alone.
func (s *Store) MarkSentCopy(ctx context.Context, id OutboxID, keyword string, done func(OutboxRcpt) bool) error {
	it, err := s.OutboxItem(ctx, id)
	if err != nil || it.SentMailboxID == 0 {
		return err
	}
	for _, r := range it.Rcpts {
		if done != nil && !done(r) {
			return nil
		}
	}
	_, err = s.StoreFlags(ctx, it.SentMailboxID, UIDSetOf(it.SentUID), FlagChange{
		Op: FlagsAdd, Flags: Flags{Keywords: []string{keyword}},
	})
	if errors.Is(err, ErrNoMailbox) {
		return nil
	}
	return err
}

// OutboxRaw returns the bytes of an outbox item's message.
func (s *Store) OutboxRaw(ctx context.Context, id OutboxID) ([]byte, error) {
	var raw []byte
	err := s.read(ctx, func(tx cachedTx) error {
		var h, t []byte
		var bodyID int64
		var pieces int
		err := tx.QueryRowContext(ctx, `SELECT b.id, b.header, b.text, b.pieces FROM outbox o JOIN body b ON b.id = o.body_id
			WHERE o.id = ?`, id).Scan(&bodyID, &h, &t, &pieces)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoOutboxItem
		}
		if err != nil {
			return fmt.Errorf("store: outbox raw: %w", err)
		}
		if raw, err = joinBody(ctx, tx, bodyID, h, t, pieces); err != nil {
			return fmt.Errorf("store: outbox raw: %w", err)
		}
		return nil
	})
	return raw, err
}

// DeleteOutboxItem removes an outbox item and its recipients (e.g. once all are final and old). The
// Sent copy is not touched.
func (s *Store) DeleteOutboxItem(ctx context.Context, id OutboxID) error {
	return s.Update(ctx, func(tx *Tx) error {
		var bodyID int64
		err := tx.queryRow(`SELECT body_id FROM outbox WHERE id = ?`, id).Scan(&bodyID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoOutboxItem
		}
		if err != nil {
			return fmt.Errorf("store: delete outbox item: %w", err)
		}
		if _, err := tx.exec(`DELETE FROM outbox_rcpt WHERE outbox_id = ?`, id); err != nil {
			return fmt.Errorf("store: delete outbox item: %w", err)
		}
		if _, err := tx.exec(`DELETE FROM outbox WHERE id = ?`, id); err != nil {
			return fmt.Errorf("store: delete outbox item: %w", err)
		}
		tx.maybeOrphaned(bodyID)
		return nil
	})
}
