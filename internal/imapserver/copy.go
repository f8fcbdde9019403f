package imapserver

import (
	"errors"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"

	"github.com/tanglemail/tanglemail/internal/store"
)

// Copy: COPY and UID COPY (RFC 9051 §6.4.7) with COPYUID (RFC 4315 §3).
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel, err := s.selectedFor(false)
	if err != nil {
		return nil, err
	}
	dst, err := s.srv.st.Mailbox(s.ctx, dest)
	if errors.Is(err, store.ErrNoMailbox) {
		return nil, errTryCreate
	} else if err != nil {
		return nil, s.storeErr("copy", err)
	}
	if err := sel.checkSeq(numSet); err != nil {
		return nil, err
	}
	idx := sel.resolve(numSet)
	if len(idx) == 0 {
		return nil, nil
	}
	res, err := s.srv.st.Copy(s.ctx, sel.id, sel.uidSet(idx), dst.ID)
	if errors.Is(err, store.ErrNoMailbox) && dst.ID != sel.id {
		return nil, errTryCreate
	} else if err != nil {
		return nil, s.storeErr("copy", err)
	}
	return copyData(res), nil
}

// Move: MOVE and UID MOVE (RFC 6851 §3): COPYUID in an untagged OK, then EXPUNGE for each source
// message, all before the tagged OK. The store moves atomically.
func (s *session) Move(w *goimap.MoveWriter, numSet imap.NumSet, dest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel, err := s.selectedFor(true)
	if err != nil {
		return err
	}
	dst, err := s.srv.st.Mailbox(s.ctx, dest)
	if errors.Is(err, store.ErrNoMailbox) {
		return errTryCreate
	} else if err != nil {
		return s.storeErr("move", err)
	}
	if err := sel.checkSeq(numSet); err != nil {
		return err
	}
	idx := sel.resolve(numSet)
	if len(idx) == 0 {
		return nil
	}
	res, err := s.srv.st.Move(s.ctx, sel.id, sel.uidSet(idx), dst.ID)
	if errors.Is(err, store.ErrNoMailbox) && dst.ID != sel.id {
		return errTryCreate
	} else if err != nil {
		return s.storeErr("move", err)
	}
	if len(res.Pairs) == 0 {
		return nil
	}
	if err := w.WriteCopyData(copyData(res)); err != nil {
		return err
	}
	src := make([]store.UID, len(res.Pairs))
	for i, p := range res.Pairs {
		src[i] = p.Src
	}
	return sel.expunge(sel.indexes(src), w.WriteExpunge)
}

func copyData(res store.CopyResult) *imap.CopyData {
	if len(res.Pairs) == 0 {
		return nil
	}
	d := &imap.CopyData{UIDValidity: res.UIDValidity}
	for _, p := range res.Pairs {
		d.SourceUIDs.AddNum(imap.UID(p.Src))
		d.DestUIDs.AddNum(imap.UID(p.Dst))
	}
	return d
}

// Expunge: EXPUNGE (RFC 9051 §6.4.3), UID EXPUNGE (RFC 4315 §2.1) and the silent expunge of CLOSE
// (§6.4.1), which go-imap signals with a writer that writes nothing. In EXAMINE, CLOSE expunges
// nothing and EXPUNGE is refused.
func (s *session) Expunge(w *goimap.ExpungeWriter, uids *imap.UIDSet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel, err := s.selectedFor(false)
	if err != nil {
		return err
	}
	isClose := *w == goimap.ExpungeWriter{} // go-imap beta.8: CLOSE passes a writer without a connection
	if sel.readOnly {
		if isClose {
			return nil
		}
		return errReadOnly
	}
	var res store.Expunged
	if uids == nil {
		res, err = s.srv.st.Expunge(s.ctx, sel.id)
	} else {
		idx := sel.resolve(*uids)
		if len(idx) == 0 {
			return nil
		}
		res, err = s.srv.st.ExpungeUIDs(s.ctx, sel.id, sel.uidSet(idx))
	}
	if err != nil {
		return s.storeErr("expunge", err)
	}
	// Messages the client has not been told about yet are left to the next poll: their EXISTS and
	// then EXPUNGE come from the pending changes.
	return sel.expunge(sel.indexes(res.UIDs), w.WriteExpunge)
}
