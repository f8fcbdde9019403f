package imapserver

import (
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"

	"github.com/tanglemail/tanglemail/internal/store"
)

// Store: STORE and UID STORE (RFC 9051 §6.4.6). Without .SILENT every matched message gets a FETCH
// response with its flags (and UID); with or without it, the session's own change is not sent again
// by the next poll (see selected.ownFlags).
func (s *session) Store(w *goimap.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, _ *imap.StoreOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel, err := s.selectedFor(true)
	if err != nil {
		return err
	}
	names := make([]string, len(flags.Flags))
	for i, f := range flags.Flags {
		names[i] = string(f)
	}
	fl, err := store.ParseFlags(names...)
	if err != nil {
		return s.storeErr("store", err)
	}
	var op store.FlagOp
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	default:
		op = store.FlagsSet
	}
	if err := sel.checkSeq(numSet); err != nil {
		return err
	}
	idx := sel.resolve(numSet)
	if len(idx) == 0 {
		return nil
	}
	res, err := s.srv.st.StoreFlags(s.ctx, sel.id, sel.uidSet(idx), store.FlagChange{Op: op, Flags: fl})
	if err != nil {
		return s.storeErr("store", err)
	}
	var uids []store.UID
	for _, m := range res.Messages {
		if flags.Silent && !m.Changed {
			continue
		}
		uids = append(uids, m.UID)
	}
	sel.ownFlags(res.ModSeq, uids, !flags.Silent)
	if err := s.announceKeywords(sel, res.ModSeq); err != nil {
		return err
	}
	if flags.Silent {
		return nil
	}
	for _, m := range res.Messages {
		i := sel.index(m.UID)
		if i < 0 {
			continue
		}
		rw := w.CreateMessage(uint32(i + 1))
		rw.WriteUID(imap.UID(m.UID))
		rw.WriteFlags(imapFlags(m.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// announceKeywords writes the mailbox's FLAGS now if the session's own write up to modseq added a
// keyword, so that the client learns of the keyword before a FETCH response that uses it (RFC 9051
// §7.3.5; go-imap writes untagged updates only after the command's own responses). It writes to the
// connection directly: nothing of the command has been written yet, and the previous command's
// responses have been flushed.
func (s *session) announceKeywords(sel *selected, modseq uint64) error {
	if modseq == 0 {
		return nil
	}
	sel.drain()
	var last *store.ChangeMailboxKeywords
	kept := sel.pending[:0]
	for _, c := range sel.pending {
		if kw, ok := c.(store.ChangeMailboxKeywords); ok && kw.ModSeq <= modseq {
			last = &kw
			continue
		}
		kept = append(kept, c)
	}
	sel.pending = kept
	if last == nil {
		return nil
	}
	var b strings.Builder
	b.WriteString("* FLAGS (")
	for i, f := range mailboxFlags(last.Keywords) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(f))
	}
	b.WriteString(")\r\n")
	nc := s.conn.NetConn()
	nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := nc.Write([]byte(b.String()))
	nc.SetWriteDeadline(time.Time{})
	return err
}
