package imapserver

import (
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
	sel := s.sel
	if sel == nil || sel.gone {
		return errMailboxGone
	}
	if sel.readOnly {
		return errReadOnly
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
