package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode legacy charsets in bodies (sets message.CharsetReader)

	"github.com/tanglemail/tanglemail/internal/mimepart"
)

// SearchCriteria selects messages (IMAP SEARCH, RFC 3501 §6.4.4 / RFC 9051 §6.4.4). All set fields must
// match (AND); Not and Or combine nested criteria. Strings match as case-insensitive substrings of the
// decoded text. Dates compare calendar days only: the message's date in its own zone against the
// year-month-day of the given time (IMAP ON d is Since d and Before d+1).
type SearchCriteria struct {
	UID []UIDSet // the UID must be in every set (the front door turns sequence sets into UID sets)

	Since, Before         time.Time // internal date
	SentSince, SentBefore time.Time // Date header; messages without a parseable Date never match these

	Header []HeaderMatch // header field contains; an empty Value matches any message having the field
	Body   []string      // decoded text parts contain
	Text   []string      // header or decoded text parts contain

	Flag    []string // IMAP flag names the message has (\Recent and unknown system flags never match)
	NotFlag []string // flag names it does not have

	Larger  int64  // size > Larger, if non-zero
	Smaller int64  // size < Smaller, if non-zero
	ModSeq  uint64 // modseq >= ModSeq, if non-zero (CONDSTORE)

	Not []SearchCriteria
	Or  [][2]SearchCriteria
}

// HeaderMatch is a HEADER search key (FROM, TO, CC, BCC and SUBJECT are HeaderMatch with that name).
type HeaderMatch struct {
	Key, Value string
}

// SearchResult is the outcome of Search.
type SearchResult struct {
	UIDs      []UID  // ascending
	MaxModSeq uint64 // highest modseq among the matches (CONDSTORE SEARCH's MODSEQ), 0 if none
}

// searchBatch is how many candidate rows Search reads per query.
const searchBatch = 256

// maxPartText bounds how much of one decoded text part a body search reads.
const maxPartText = 16 << 20

// Search returns the UIDs of the mailbox's messages that match c. Conditions on flags, dates, sizes,
// UIDs and modseq are evaluated by SQLite; header and body conditions by scanning the candidates in
// UID order, one message's bytes at a time, all in one read snapshot.
func (s *Store) Search(ctx context.Context, mailboxID MailboxID, c SearchCriteria) (SearchResult, error) {
	var res SearchResult
	cc := compileCriteria(c)
	err := s.read(ctx, func(tx cachedTx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM mailbox WHERE id = ?`, mailboxID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMailbox
		}
		if err != nil {
			return fmt.Errorf("store: search: %w", err)
		}
		where, args, _ := cc.sql()
		var after int64
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			q := `SELECT uid, body_id, modseq, size, received, received_tz, sent, sent_tz, flags, keywords
				FROM message WHERE mailbox_id = ? AND expunged = 0 AND uid > ? AND ` + where +
				` ORDER BY uid LIMIT ?`
			qargs := append(append([]any{mailboxID, after}, args...), searchBatch)
			batch, err := readCandidates(ctx, tx, q, qargs)
			if err != nil {
				return err
			}
			for i := range batch {
				m := &batch[i]
				m.tx, m.ctx = tx, ctx
				ok, err := cc.match(m)
				if err != nil {
					return err
				}
				if ok {
					res.UIDs = append(res.UIDs, m.uid)
					res.MaxModSeq = max(res.MaxModSeq, m.modseq)
				}
				m.release()
			}
			if len(batch) < searchBatch {
				return nil
			}
			after = int64(batch[len(batch)-1].uid)
		}
	})
	return res, err
}

// candidate is a message under evaluation; its header and text are loaded on first need.
type candidate struct {
	ctx    context.Context
	tx     cachedTx
	uid    UID
	bodyID int64
	modseq uint64
	size   int64
	recv   int64
	recvTZ int64
	sent   sql.NullInt64
	sentTZ sql.NullInt64
	flags  Flags

	hdrRaw   []byte
	hdr      parsedHeader
	hdrLower string // raw and decoded header, lower case
	textDone bool
	text     []string // decoded text parts, lower case
}

func readCandidates(ctx context.Context, tx cachedTx, q string, args []any) ([]candidate, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	defer rows.Close()
	var out []candidate
	for rows.Next() {
		var m candidate
		var uid, flags int64
		var kw string
		var body sql.NullInt64
		if err := rows.Scan(&uid, &body, &m.modseq, &m.size, &m.recv, &m.recvTZ, &m.sent, &m.sentTZ, &flags, &kw); err != nil {
			return nil, fmt.Errorf("store: search: %w", err)
		}
		m.uid, m.bodyID = UID(uid), body.Int64
		m.flags = Flags{System: SystemFlags(flags), Keywords: parseKeywordsColumn(kw)}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (m *candidate) release() { m.hdrRaw, m.hdr, m.hdrLower, m.text = nil, nil, "", nil }

func (m *candidate) header() (parsedHeader, error) {
	if m.hdr != nil || m.hdrRaw != nil {
		return m.hdr, nil
	}
	err := m.tx.QueryRowContext(m.ctx, `SELECT coalesce(header, x'') FROM body WHERE id = ?`, m.bodyID).Scan(&m.hdrRaw)
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	if m.hdrRaw == nil {
		m.hdrRaw = []byte{}
	}
	m.hdr = parseHeader(m.hdrRaw, true)
	return m.hdr, nil
}

func (m *candidate) headerLower() (string, error) {
	if m.hdrLower != "" {
		return m.hdrLower, nil
	}
	h, err := m.header()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(strings.ToLower(string(m.hdrRaw)))
	for _, f := range h {
		if f.decoded != f.raw {
			b.WriteString("\n")
			b.WriteString(strings.ToLower(f.decoded))
		}
	}
	m.hdrLower = b.String()
	return m.hdrLower, nil
}

// bodyText returns the message's text parts, transfer- and charset-decoded, in lower case.
func (m *candidate) bodyText() ([]string, error) {
	if m.textDone {
		return m.text, nil
	}
	m.textDone = true
	var h, t []byte
	var pieces int
	err := m.tx.QueryRowContext(m.ctx, `SELECT header, text, pieces FROM body WHERE id = ?`, m.bodyID).Scan(&h, &t, &pieces)
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	raw, err := joinBody(m.ctx, m.tx, m.bodyID, h, t, pieces)
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	m.text = textParts(raw)
	return m.text, nil
}

// textParts returns the decoded text/* parts of a message in lower case, read from mimepart's
// bounded parse (at most mimepart.MaxDepth levels and mimepart.MaxParts parts, so a deeply nested
// mail costs one pass over its bytes).
func textParts(raw []byte) []string {
	var out []string
	var walk func(p *mimepart.Part)
	walk = func(p *mimepart.Part) {
		switch {
		case p.Opaque:
		case p.IsMultipart():
			for _, c := range p.Children {
				walk(c)
			}
		case p.Message != nil:
			walk(p.Message)
		case p.Type == "text":
			b, err := mimepart.Decode(p.Header.Get("Content-Transfer-Encoding"), raw[p.BodyStart:p.BodyEnd])
			if err != nil {
				b = raw[p.BodyStart:p.BodyEnd]
			}
			if cs := strings.ToLower(p.Params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" && message.CharsetReader != nil {
				if r, err := message.CharsetReader(cs, bytes.NewReader(b)); err == nil {
					if d, err := io.ReadAll(io.LimitReader(r, maxPartText)); err == nil || len(d) > 0 {
						b = d
					}
				}
			}
			if len(b) > maxPartText {
				b = b[:maxPartText]
			}
			out = append(out, strings.ToLower(string(b)))
		}
	}
	walk(mimepart.Parse(raw))
	return out
}

// compiled is SearchCriteria with lower-cased strings and parsed flags.
type compiled struct {
	uid                         []UIDSet
	since, before               int64 // day numbers (days since 1970-01-01), valid when has*
	sentSince, sentBefore       int64
	hasSince, hasBefore         bool
	hasSentSince, hasSentBefore bool
	header                      []HeaderMatch // lower case
	body, text                  []string      // lower case
	flagSys, notFlagSys         SystemFlags
	flagKW, notFlagKW           []string
	flagNever                   bool // a Flag that can never match
	larger, smaller             int64
	modseq                      uint64
	not                         []compiled
	or                          [][2]compiled
}

func compileCriteria(c SearchCriteria) compiled {
	var k compiled
	for _, s := range c.UID {
		k.uid = append(k.uid, s.normalize())
	}
	if !c.Since.IsZero() {
		k.since, k.hasSince = dayOfDate(c.Since), true
	}
	if !c.Before.IsZero() {
		k.before, k.hasBefore = dayOfDate(c.Before), true
	}
	if !c.SentSince.IsZero() {
		k.sentSince, k.hasSentSince = dayOfDate(c.SentSince), true
	}
	if !c.SentBefore.IsZero() {
		k.sentBefore, k.hasSentBefore = dayOfDate(c.SentBefore), true
	}
	for _, h := range c.Header {
		k.header = append(k.header, HeaderMatch{Key: h.Key, Value: strings.ToLower(h.Value)})
	}
	for _, s := range c.Body {
		k.body = append(k.body, strings.ToLower(s))
	}
	for _, s := range c.Text {
		k.text = append(k.text, strings.ToLower(s))
	}
	for _, f := range c.Flag {
		if bit, ok := systemFlag(f); ok {
			k.flagSys |= bit
		} else if strings.HasPrefix(f, `\`) || !validKeyword(f) {
			k.flagNever = true
		} else {
			k.flagKW = append(k.flagKW, strings.ToLower(f))
		}
	}
	for _, f := range c.NotFlag {
		if bit, ok := systemFlag(f); ok {
			k.notFlagSys |= bit
		} else if !strings.HasPrefix(f, `\`) && validKeyword(f) {
			k.notFlagKW = append(k.notFlagKW, strings.ToLower(f))
		} // a flag no message can have: NOT it always holds
	}
	k.larger, k.smaller, k.modseq = c.Larger, c.Smaller, c.ModSeq
	for _, n := range c.Not {
		k.not = append(k.not, compileCriteria(n))
	}
	for _, o := range c.Or {
		k.or = append(k.or, [2]compiled{compileCriteria(o[0]), compileCriteria(o[1])})
	}
	return k
}

// dayOfDate is the day number (days since 1970-01-01) of t's year-month-day in t's own zone.
func dayOfDate(t time.Time) int64 {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// dayOf is the day number of Unix time sec seen in the zone with the given offset.
func dayOf(sec, offset int64) int64 {
	x := sec + offset
	if x >= 0 {
		return x / 86400
	}
	return -((-x + 86399) / 86400)
}

// SQL for the same day numbers (floor division).
const (
	sqlRecvDay = `((received + received_tz) - (((received + received_tz) % 86400) + 86400) % 86400) / 86400`
	sqlSentDay = `((sent + sent_tz) - (((sent + sent_tz) % 86400) + 86400) % 86400) / 86400`
)

// sql returns a condition that every matching message satisfies (exactly c when exact).
func (k compiled) sql() (where string, args []any, exact bool) {
	var conds []string
	exact = len(k.header) == 0 && len(k.body) == 0 && len(k.text) == 0
	add := func(c string, a ...any) {
		conds = append(conds, c)
		args = append(args, a...)
	}
	for _, s := range k.uid {
		if len(s) == 0 {
			add("0")
			continue
		}
		c, a, ex := uidCond("uid", s)
		add(c, a...)
		exact = exact && ex
	}
	if k.hasSince {
		add(sqlRecvDay+" >= ?", k.since)
	}
	if k.hasBefore {
		add(sqlRecvDay+" < ?", k.before)
	}
	if k.hasSentSince {
		add("sent IS NOT NULL AND "+sqlSentDay+" >= ?", k.sentSince)
	}
	if k.hasSentBefore {
		add("sent IS NOT NULL AND "+sqlSentDay+" < ?", k.sentBefore)
	}
	if k.flagNever {
		add("0")
	}
	if k.flagSys != 0 {
		add("(flags & ?) = ?", int64(k.flagSys), int64(k.flagSys))
	}
	if k.notFlagSys != 0 {
		add("(flags & ?) = 0", int64(k.notFlagSys))
	}
	for _, kw := range k.flagKW {
		add("instr(' ' || lower(keywords) || ' ', ?) > 0", " "+kw+" ")
	}
	for _, kw := range k.notFlagKW {
		add("instr(' ' || lower(keywords) || ' ', ?) = 0", " "+kw+" ")
	}
	if k.larger > 0 {
		add("size > ?", k.larger)
	}
	if k.smaller > 0 {
		add("size < ?", k.smaller)
	}
	if k.modseq > 0 {
		add("modseq >= ?", clampU64(k.modseq))
	}
	for _, n := range k.not {
		w, a, ex := n.sql()
		if ex {
			add("NOT ("+w+")", a...)
		} else {
			exact = false // NOT of a superset is not a superset of NOT: leave it to the scan
		}
	}
	for _, o := range k.or {
		w1, a1, ex1 := o[0].sql()
		w2, a2, ex2 := o[1].sql()
		add("(("+w1+") OR ("+w2+"))", append(a1, a2...)...)
		exact = exact && ex1 && ex2
	}
	if len(conds) == 0 {
		return "1", nil, exact
	}
	return strings.Join(conds, " AND "), args, exact
}

// match evaluates every condition of k on m (the SQL prefilter is only an optimisation).
func (k compiled) match(m *candidate) (bool, error) {
	for _, s := range k.uid {
		if !s.containsNormalized(m.uid) {
			return false, nil
		}
	}
	rd := dayOf(m.recv, m.recvTZ)
	if (k.hasSince && rd < k.since) || (k.hasBefore && rd >= k.before) {
		return false, nil
	}
	if k.hasSentSince || k.hasSentBefore {
		if !m.sent.Valid {
			return false, nil
		}
		sd := dayOf(m.sent.Int64, m.sentTZ.Int64)
		if (k.hasSentSince && sd < k.sentSince) || (k.hasSentBefore && sd >= k.sentBefore) {
			return false, nil
		}
	}
	if k.flagNever || m.flags.System&k.flagSys != k.flagSys || m.flags.System&k.notFlagSys != 0 {
		return false, nil
	}
	for _, kw := range k.flagKW {
		if !m.flags.Has(kw) {
			return false, nil
		}
	}
	for _, kw := range k.notFlagKW {
		if m.flags.Has(kw) {
			return false, nil
		}
	}
	if (k.larger > 0 && m.size <= k.larger) || (k.smaller > 0 && m.size >= k.smaller) ||
		(k.modseq > 0 && m.modseq < k.modseq) {
		return false, nil
	}
	for _, n := range k.not {
		ok, err := n.match(m)
		if err != nil || ok {
			return false, err
		}
	}
	for _, o := range k.or {
		ok, err := o[0].match(m)
		if err != nil {
			return false, err
		}
		if !ok {
			if ok, err = o[1].match(m); err != nil || !ok {
				return false, err
			}
		}
	}
	// The expensive conditions last: headers, then bodies.
	if len(k.header) > 0 {
		h, err := m.header()
		if err != nil {
			return false, err
		}
		for _, hm := range k.header {
			if !headerMatches(h, hm) {
				return false, nil
			}
		}
	}
	for _, s := range k.text {
		hl, err := m.headerLower()
		if err != nil {
			return false, err
		}
		if strings.Contains(hl, s) {
			continue
		}
		parts, err := m.bodyText()
		if err != nil {
			return false, err
		}
		if !anyContains(parts, s) {
			return false, nil
		}
	}
	for _, s := range k.body {
		parts, err := m.bodyText()
		if err != nil {
			return false, err
		}
		if !anyContains(parts, s) {
			return false, nil
		}
	}
	return true, nil
}

func headerMatches(h parsedHeader, hm HeaderMatch) bool {
	for _, f := range h {
		if !strings.EqualFold(f.name, hm.Key) {
			continue
		}
		if hm.Value == "" || lowerContains(f.decoded, hm.Value) || lowerContains(f.raw, hm.Value) {
			return true
		}
	}
	return false
}

func anyContains(parts []string, s string) bool {
	for _, p := range parts {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}
