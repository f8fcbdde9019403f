package imapserver

import (
	"errors"
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"

	"github.com/tanglemail/tanglemail/internal/store"
)

// maxPending bounds the changes a session keeps between polls; beyond it the session resyncs from a
// fresh listing, as after a listener overflow.
const maxPending = 10000

// selected is the selected mailbox of a session and the client's view of it: the UIDs of the
// messages the client knows, in sequence-number order (message n is uids[n-1]). The view changes only
// when the client is told: by EXISTS, EXPUNGE and FETCH responses written at the end of a command,
// during IDLE, or by the session's own EXPUNGE and MOVE.
// selectedFor returns the selected mailbox of a command, errMailboxGone if there is none (any more);
// write: a command that changes it, errReadOnly after EXAMINE. Called with s.mu held.
func (s *session) selectedFor(write bool) (*selected, error) {
	sel := s.sel
	if sel == nil || sel.gone {
		return nil, errMailboxGone
	}
	if write && sel.readOnly {
		return nil, errReadOnly
	}
	return sel, nil
}

type selected struct {
	id       store.MailboxID
	readOnly bool
	uids     []store.UID

	listener *store.Listener
	snapshot uint64         // changes with ModSeq <= snapshot are in the view already (store's snapshot rule)
	reported uint64         // highest ModSeq of a change written to the client
	pending  []store.Change // changes to this mailbox taken from the listener, not yet written
	resync   bool           // the listener overflowed: rebuild the view from a listing
	gone     bool           // the mailbox was deleted

	saved []store.UID // SEARCHRES "$" (RFC 5182), ascending
}

func (sel *selected) close() {
	sel.listener.Close()
}

// Select: SELECT and EXAMINE (RFC 9051 §6.3.2, §6.3.3). The session subscribes to the store's changes
// before it lists the mailbox, so every change after the listing's snapshot reaches it and every
// change before is dropped by its ModSeq.
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	m, err := s.srv.st.Mailbox(s.ctx, name)
	if err != nil {
		return nil, s.storeErr("select", err)
	}
	l := s.srv.st.Subscribe()
	listing, err := s.srv.st.List(s.ctx, m.ID, store.ListQuery{})
	if err == nil {
		// Keywords read after the snapshot may include newer ones: a superset is harmless.
		m, err = s.srv.st.MailboxByID(s.ctx, m.ID)
	}
	if err != nil {
		l.Close()
		return nil, s.storeErr("select", err)
	}
	sel := &selected{
		id:       m.ID,
		readOnly: options != nil && options.ReadOnly,
		uids:     make([]store.UID, len(listing.Messages)),
		listener: l,
		snapshot: listing.ModSeq,
		reported: listing.ModSeq,
	}
	var firstUnseen uint32
	for i, mi := range listing.Messages {
		sel.uids[i] = mi.UID
		if firstUnseen == 0 && mi.Flags.System&store.FlagSeen == 0 {
			firstUnseen = uint32(i + 1)
		}
	}
	s.sel = sel
	flags := mailboxFlags(m.Keywords)
	perm := []imap.Flag{}
	if !sel.readOnly {
		perm = append(slices.Clone(flags), imap.FlagWildcard)
	}
	return &imap.SelectData{
		Flags:             flags,
		PermanentFlags:    perm,
		NumMessages:       uint32(len(sel.uids)),
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(listing.UIDNext),
		UIDValidity:       listing.UIDValidity,
	}, nil
}

// Unselect: UNSELECT (RFC 3691, RFC 9051 §6.4.2) and the end of CLOSE (§6.4.1).
func (s *session) Unselect() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	return nil
}

// Poll writes pending changes of the selected mailbox after a command (RFC 9051 §7: untagged
// responses before the tagged one). Without allowExpunge (FETCH, STORE, SEARCH by sequence number,
// RFC 9051 §7.5.1) it stops before the first EXPUNGE.
func (s *session) Poll(w *goimap.UpdateWriter, allowExpunge bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return nil
	}
	return s.flush(s.sel, w, allowExpunge)
}

// Idle: IDLE (RFC 2177). It writes the selected mailbox's changes as the store broadcasts them, until
// the client sends DONE.
func (s *session) Idle(w *goimap.UpdateWriter, stop <-chan struct{}) error {
	s.mu.Lock()
	sel := s.sel
	var err error
	if sel != nil {
		err = s.flush(sel, w, true)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if sel == nil {
		select {
		case <-stop:
		case <-s.ctx.Done():
		}
		return nil
	}
	for {
		select {
		case <-sel.listener.Ready():
			s.mu.Lock()
			if s.sel == sel {
				err = s.flush(sel, w, true)
			}
			s.mu.Unlock()
			if err != nil {
				return err
			}
		case <-stop:
			return nil
		case <-s.ctx.Done():
			return nil
		}
	}
}

// drain moves the listener's changes to this mailbox into pending.
func (sel *selected) drain() {
	changes, overflow := sel.listener.Take()
	if overflow {
		sel.resync, sel.pending = true, nil
		return
	}
	if sel.resync {
		return
	}
	for _, c := range changes {
		if c.ChangeModSeq() <= sel.snapshot {
			continue
		}
		var id store.MailboxID
		switch c := c.(type) {
		case store.ChangeAdd:
			id = c.MailboxID
		case store.ChangeFlags:
			id = c.MailboxID
		case store.ChangeExpunge:
			id = c.MailboxID
		case store.ChangeMailboxKeywords:
			id = c.MailboxID
		case store.ChangeMailboxDelete:
			id = c.MailboxID
		default:
			continue
		}
		if id == sel.id {
			sel.pending = append(sel.pending, c)
		}
	}
	if len(sel.pending) > maxPending {
		sel.resync, sel.pending = true, nil
	}
}

// flush writes pending changes as EXISTS, EXPUNGE, FETCH (FLAGS) and FLAGS responses, updating the
// view as it goes. Flag changes of one message are coalesced to the newest. A stop before an EXPUNGE
// (allowExpunge false) leaves it and what follows pending.
func (s *session) flush(sel *selected, w *goimap.UpdateWriter, allowExpunge bool) error {
	sel.drain()
	if sel.resync {
		if !allowExpunge {
			return nil
		}
		return s.resyncView(sel, w)
	}
	if len(sel.pending) == 0 {
		return nil
	}
	newest := map[store.UID]int{}
	for i, c := range sel.pending {
		if f, ok := c.(store.ChangeFlags); ok {
			newest[f.UID] = i
		}
	}
	announced := len(sel.uids)
	exists := func() error {
		if len(sel.uids) == announced {
			return nil
		}
		announced = len(sel.uids)
		return w.WriteNumMessages(uint32(announced))
	}
	i := 0
	defer func() { sel.pending = sel.pending[i:] }()
	for ; i < len(sel.pending); i++ {
		c := sel.pending[i]
		switch c := c.(type) {
		case store.ChangeAdd:
			if n := len(sel.uids); n == 0 || c.UID > sel.uids[n-1] {
				sel.uids = append(sel.uids, c.UID)
			}
		case store.ChangeExpunge:
			idx := sel.indexes(c.UIDs)
			if len(idx) > 0 && !allowExpunge {
				return exists()
			}
			if err := exists(); err != nil {
				return err
			}
			if err := sel.expunge(idx, w.WriteExpunge); err != nil {
				return err
			}
			announced = len(sel.uids)
		case store.ChangeFlags:
			if newest[c.UID] != i {
				continue
			}
			j := sel.index(c.UID)
			if j < 0 {
				continue
			}
			if err := exists(); err != nil {
				return err
			}
			if err := w.WriteMessageFlags(uint32(j+1), imap.UID(c.UID), imapFlags(c.Flags)); err != nil {
				return err
			}
		case store.ChangeMailboxKeywords:
			if err := w.WriteMailboxFlags(mailboxFlags(c.Keywords)); err != nil {
				return err
			}
		case store.ChangeMailboxDelete:
			if !allowExpunge && len(sel.uids) > 0 {
				return exists()
			}
			if err := exists(); err != nil {
				return err
			}
			if err := sel.expungeAll(w.WriteExpunge); err != nil {
				return err
			}
			announced = 0
			sel.gone = true
		}
		sel.reported = max(sel.reported, c.ChangeModSeq())
	}
	return exists()
}

// resyncView rebuilds the view from a fresh listing after the listener overflowed: EXPUNGE for the
// messages gone, EXISTS for the new ones, FETCH FLAGS for those changed since the last change written,
// and the mailbox's FLAGS.
func (s *session) resyncView(sel *selected, w *goimap.UpdateWriter) error {
	listing, err := s.srv.st.List(s.ctx, sel.id, store.ListQuery{})
	if errors.Is(err, store.ErrNoMailbox) {
		sel.resync, sel.gone = false, true
		return sel.expungeAll(w.WriteExpunge)
	}
	if err != nil {
		return s.storeErr("resync", err)
	}
	m, err := s.srv.st.MailboxByID(s.ctx, sel.id)
	if err != nil {
		return s.storeErr("resync", err)
	}
	present := make([]store.UID, len(listing.Messages))
	for i, mi := range listing.Messages {
		present[i] = mi.UID
	}
	var gone []int
	for i, uid := range sel.uids {
		if _, ok := slices.BinarySearch(present, uid); !ok {
			gone = append(gone, i)
		}
	}
	if err := sel.expunge(gone, w.WriteExpunge); err != nil {
		return err
	}
	var last store.UID
	if n := len(sel.uids); n > 0 {
		last = sel.uids[n-1]
	}
	added := false
	for _, uid := range present {
		if uid > last {
			sel.uids = append(sel.uids, uid)
			added = true
		}
	}
	if added {
		if err := w.WriteNumMessages(uint32(len(sel.uids))); err != nil {
			return err
		}
	}
	if err := w.WriteMailboxFlags(mailboxFlags(m.Keywords)); err != nil {
		return err
	}
	for _, mi := range listing.Messages {
		if mi.ModSeq <= sel.reported {
			continue
		}
		if j := sel.index(mi.UID); j >= 0 {
			if err := w.WriteMessageFlags(uint32(j+1), imap.UID(mi.UID), imapFlags(mi.Flags)); err != nil {
				return err
			}
		}
	}
	sel.snapshot, sel.reported = listing.ModSeq, listing.ModSeq
	sel.pending, sel.resync = nil, false
	return nil
}

// ownFlags records that the session itself changed (or, with reported, wrote) the flags of uids in
// the transaction with the given modseq, so that flush does not echo them: pending flag changes of
// those messages up to modseq are dropped. For a .SILENT STORE (not reported) the session's own change
// is kept when another session changed the message before it, so the client learns the combined
// flags. The store broadcasts before a write returns, so every change up to modseq is in the listener.
func (sel *selected) ownFlags(modseq uint64, uids []store.UID, reported bool) {
	if modseq == 0 || len(uids) == 0 {
		return
	}
	sel.drain()
	if sel.resync || len(sel.pending) == 0 {
		return
	}
	mine := make(map[store.UID]bool, len(uids))
	for _, u := range uids {
		mine[u] = false // true: another session changed it before us
	}
	for _, c := range sel.pending {
		if f, ok := c.(store.ChangeFlags); ok && f.ModSeq < modseq {
			if _, ok := mine[f.UID]; ok {
				mine[f.UID] = true
			}
		}
	}
	sel.pending = slices.DeleteFunc(sel.pending, func(c store.Change) bool {
		f, ok := c.(store.ChangeFlags)
		if !ok || f.ModSeq > modseq {
			return false
		}
		others, ok := mine[f.UID]
		if !ok {
			return false
		}
		return reported || f.ModSeq < modseq || !others
	})
}

// index returns the position of uid in the view, or -1.
func (sel *selected) index(uid store.UID) int {
	if i, ok := slices.BinarySearch(sel.uids, uid); ok {
		return i
	}
	return -1
}

// indexes returns the positions of the UIDs (ascending) that are in the view, ascending.
func (sel *selected) indexes(uids []store.UID) []int {
	var idx []int
	for _, u := range uids {
		if i := sel.index(u); i >= 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// expunge removes the messages at the ascending positions idx from the view, writing EXPUNGE for each
// from the highest sequence number down so that no number shifts before it is written.
func (sel *selected) expunge(idx []int, write func(seq uint32) error) error {
	for k := len(idx) - 1; k >= 0; k-- {
		if err := write(uint32(idx[k] + 1)); err != nil {
			return err
		}
	}
	if len(idx) == 0 {
		return nil
	}
	drop := make(map[int]bool, len(idx))
	for _, i := range idx {
		drop[i] = true
	}
	out := sel.uids[:0]
	for i, u := range sel.uids {
		if !drop[i] {
			out = append(out, u)
		}
	}
	sel.uids = out
	return nil
}

func (sel *selected) expungeAll(write func(seq uint32) error) error {
	for k := len(sel.uids); k > 0; k-- {
		if err := write(uint32(k)); err != nil {
			return err
		}
	}
	sel.uids = nil
	return nil
}

// resolve turns a sequence set, UID set or "$" into positions in the view, ascending and unique. "*"
// is the last message (RFC 9051 §9 seq-number); UIDs of messages the client has not been told about
// are not part of it.
func (sel *selected) resolve(numSet imap.NumSet) []int {
	n := len(sel.uids)
	if n == 0 {
		return nil
	}
	var idx []int
	if imap.IsSearchRes(numSet) {
		return sel.indexes(sel.saved)
	}
	switch set := numSet.(type) {
	case imap.SeqSet:
		for _, r := range set {
			a, b := r.Start, r.Stop
			if a == 0 {
				a = uint32(n)
			}
			if b == 0 {
				b = uint32(n)
			}
			if a > b {
				a, b = b, a
			}
			b = min(b, uint32(n))
			for i := a; i >= 1 && i <= b; i++ {
				idx = append(idx, int(i-1))
			}
		}
	case imap.UIDSet:
		maxUID := sel.uids[n-1]
		for _, r := range set {
			a, b := store.UID(r.Start), store.UID(r.Stop)
			if a == 0 {
				a = maxUID
			}
			if b == 0 {
				b = maxUID
			}
			if a > b {
				a, b = b, a
			}
			lo := sort.Search(n, func(i int) bool { return sel.uids[i] >= a })
			hi := sort.Search(n, func(i int) bool { return sel.uids[i] > b })
			for i := lo; i < hi; i++ {
				idx = append(idx, i)
			}
		}
	}
	if len(idx) > 1 && !sort.IntsAreSorted(idx) {
		sort.Ints(idx)
	}
	return slices.Compact(idx)
}

// errBadSeq answers a sequence number beyond the client's view, as Dovecot does (RFC 9051 §9
// seq-number: a number must name an existing message; UIDs need not).
var errBadSeq = imapErr(imap.StatusResponseTypeBad, imap.ResponseCodeClientBug, "Invalid message sequence number: beyond the last message")

// checkSeq refuses a sequence set with a number beyond the view.
func (sel *selected) checkSeq(numSet imap.NumSet) error {
	set, ok := numSet.(imap.SeqSet)
	if !ok {
		return nil
	}
	n := uint32(len(sel.uids))
	for _, r := range set {
		if r.Start != 0 && r.Stop != 0 && (r.Start > n || r.Stop > n) { // 0 is "*": ranges with it are fine
			return errBadSeq
		}
	}
	return nil
}

// uidSet returns the store UID set of the messages at positions idx (ascending): consecutive
// positions become one range. The range is exact because every stored message with a UID between two
// messages of the view is in the view (newer messages have higher UIDs).
func (sel *selected) uidSet(idx []int) store.UIDSet {
	var set store.UIDSet
	for k := 0; k < len(idx); {
		j := k
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		set = append(set, store.UIDRange{Start: sel.uids[idx[k]], Stop: sel.uids[idx[j]]})
		k = j + 1
	}
	return set
}

// systemFlags are the flags every mailbox has (FLAGS, PERMANENTFLAGS).
var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

func mailboxFlags(keywords []string) []imap.Flag {
	out := slices.Clone(systemFlags)
	for _, k := range keywords {
		out = append(out, imap.Flag(k))
	}
	return out
}

func imapFlags(f store.Flags) []imap.Flag {
	names := f.Strings()
	out := make([]imap.Flag, len(names))
	for i, n := range names {
		out[i] = imap.Flag(n)
	}
	return out
}
