package imapserver

import (
	"bytes"
	"errors"
	"io"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"

	"github.com/tanglemail/tanglemail/internal/store"
)

// Commands of the authenticated state that name mailboxes (RFC 9051 §6.3). Mailbox names arrive
// decoded from modified UTF-7 (or as UTF-8 after ENABLE UTF8=ACCEPT) by go-imap and are UTF-8 here,
// as in the store.

// trimName drops a trailing hierarchy delimiter: "CREATE foo/" creates foo (RFC 3501 §6.3.3).
func trimName(name string) string {
	if len(name) > 1 {
		name = strings.TrimSuffix(name, store.Delimiter)
	}
	return name
}

func (s *session) Create(name string, options *imap.CreateOptions) error {
	if options != nil && len(options.SpecialUse) > 0 {
		// CREATE-SPECIAL-USE is not advertised: the special-use mailboxes exist from the start.
		return imapErr(imap.StatusResponseTypeNo, "USEATTR", "Special-use mailboxes cannot be created")
	}
	if _, err := s.srv.st.CreateMailbox(s.ctx, trimName(name)); err != nil {
		return s.storeErr("create", err)
	}
	return nil
}

func (s *session) Delete(name string) error {
	if err := s.srv.st.DeleteMailbox(s.ctx, trimName(name)); err != nil {
		return s.storeErr("delete", err)
	}
	return nil
}

func (s *session) Rename(name, newName string, _ *imap.RenameOptions) error {
	if err := s.srv.st.RenameMailbox(s.ctx, trimName(name), trimName(newName)); err != nil {
		return s.storeErr("rename", err)
	}
	return nil
}

func (s *session) Subscribe(name string) error {
	if err := s.srv.st.SetSubscribed(s.ctx, trimName(name), true); err != nil {
		return s.storeErr("subscribe", err)
	}
	return nil
}

func (s *session) Unsubscribe(name string) error {
	if err := s.srv.st.SetSubscribed(s.ctx, trimName(name), false); err != nil {
		return s.storeErr("unsubscribe", err)
	}
	return nil
}

// Status: STATUS (RFC 9051 §6.3.11), with SIZE (RFC 8438), DELETED and APPENDLIMIT (RFC 7889).
func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	if err := checkStatusOptions(options); err != nil {
		return nil, err
	}
	m, err := s.srv.st.Mailbox(s.ctx, name)
	if err != nil {
		return nil, s.storeErr("status", err)
	}
	return s.statusData(m, options), nil
}

func checkStatusOptions(o *imap.StatusOptions) error {
	if o != nil && o.DeletedStorage {
		return imapErr(imap.StatusResponseTypeBad, imap.ResponseCodeClientBug, "DELETED-STORAGE is not supported")
	}
	return nil
}

// statusData fills every item go-imap will write (it dereferences the pointers of requested items).
func (s *session) statusData(m store.Mailbox, o *imap.StatusOptions) *imap.StatusData {
	d := &imap.StatusData{Mailbox: m.Name, UIDNext: imap.UID(m.UIDNext), UIDValidity: m.UIDValidity}
	if o.NumMessages {
		d.NumMessages = ptr(m.Messages)
	}
	if o.NumUnseen {
		d.NumUnseen = ptr(m.Unseen)
	}
	if o.NumDeleted {
		d.NumDeleted = ptr(m.Deleted)
	}
	if o.Size {
		d.Size = ptr(m.Size)
	}
	if o.NumRecent {
		d.NumRecent = ptr(uint32(0)) // \Recent is not kept (RFC 9051 dropped it)
	}
	if o.AppendLimit {
		d.AppendLimit = ptr(s.srv.appendMax)
	}
	return d
}

func ptr[T any](v T) *T { return &v }

// Append: APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315 §3). go-imap has checked the size
// against APPENDLIMIT before accepting the literal.
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	if r.Size() > int64(s.srv.appendMax) {
		return nil, imapErr(imap.StatusResponseTypeNo, imap.ResponseCodeTooBig, "Message too large")
	}
	buf := bytes.NewBuffer(make([]byte, 0, r.Size()))
	if _, err := io.Copy(buf, io.LimitReader(r, int64(s.srv.appendMax)+1)); err != nil {
		return nil, err // connection error: go-imap ends the connection
	}
	raw, err := encodeBinary(buf.Bytes())
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range options.Flags {
		names = append(names, string(f))
	}
	flags, err := store.ParseFlags(names...)
	if err != nil {
		return nil, s.storeErr("append", err)
	}
	m, err := s.srv.st.Mailbox(s.ctx, name)
	if errors.Is(err, store.ErrNoMailbox) {
		return nil, errTryCreate
	} else if err != nil {
		return nil, s.storeErr("append", err)
	}
	a, err := s.srv.st.Append(s.ctx, store.NewMessage{
		MailboxID: m.ID,
		Raw:       raw,
		Flags:     flags,
		Received:  options.Time,
	})
	if errors.Is(err, store.ErrNoMailbox) {
		return nil, errTryCreate
	} else if err != nil {
		return nil, s.storeErr("append", err)
	}
	return &imap.AppendData{UID: imap.UID(a.UID), UIDValidity: a.UIDValidity}, nil
}

// listEntry is a name LIST may return: a mailbox, a missing superior of one, or a subscription.
type listEntry struct {
	name        string
	mbox        *store.Mailbox // nil if no mailbox has this name
	subscribed  bool
	hasChildren bool
	subChild    bool // an inferior name is subscribed (LIST-EXTENDED CHILDINFO)
}

// List: LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9) with LIST-EXTENDED selection and return
// options (RFC 5258), CHILDREN, SPECIAL-USE (RFC 6154 §2: special-use attributes are always
// returned) and LIST-STATUS (RFC 5819). Superiors that are not mailboxes are listed \Noselect
// (RFC 3501 §6.3.8); subscriptions without a mailbox are \NonExistent (RFC 5258 §3).
func (s *session) List(w *goimap.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter and root (RFC 9051 §6.3.9).
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	if options.ReturnStatus != nil {
		if err := checkStatusOptions(options.ReturnStatus); err != nil {
			return err
		}
	}
	mboxes, err := s.srv.st.Mailboxes(s.ctx)
	if err != nil {
		return s.storeErr("list", err)
	}
	subs, err := s.srv.st.Subscriptions(s.ctx)
	if err != nil {
		return s.storeErr("list", err)
	}

	entries := map[string]*listEntry{}
	get := func(name string) *listEntry {
		e := entries[name]
		if e == nil {
			e = &listEntry{name: name}
			entries[name] = e
		}
		return e
	}
	for i := range mboxes {
		get(mboxes[i].Name).mbox = &mboxes[i]
	}
	for _, n := range subs {
		get(n).subscribed = true
	}
	// Superiors: every level above a mailbox or a subscription.
	named := make([]*listEntry, 0, len(entries))
	for _, e := range entries {
		named = append(named, e)
	}
	for _, e := range named {
		for i := strings.LastIndex(e.name, store.Delimiter); i > 0; i = strings.LastIndex(e.name[:i], store.Delimiter) {
			p := get(e.name[:i])
			p.hasChildren = p.hasChildren || e.mbox != nil
			p.subChild = p.subChild || e.subscribed
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)

	showSubscribed := options.SelectSubscribed || options.ReturnSubscribed
	lsub := options.SelectSubscribed && s.command() == "LSUB"
	for _, name := range names {
		e := entries[name]
		if !matchAny(name, ref, patterns) {
			continue
		}
		var childInfo *imap.ListDataChildInfo
		switch {
		case lsub && !e.subscribed:
			// LSUB: a superior of a subscribed name that the pattern's "%" left out is listed
			// \Noselect (RFC 3501 §6.3.9).
			if !e.subChild || !hiddenSubscription(name, subs, ref, patterns) {
				continue
			}
			if err := w.WriteList(&imap.ListData{Mailbox: name, Delim: delim,
				Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}}); err != nil {
				return err
			}
			continue
		case options.SelectSubscribed:
			if !e.subscribed {
				if !(options.SelectRecursiveMatch && e.subChild) {
					continue
				}
				childInfo = &imap.ListDataChildInfo{Subscribed: true}
			}
		case e.mbox == nil && !e.hasChildren:
			continue // a subscription alone, outside LIST (SUBSCRIBED)
		}
		if options.SelectSpecialUse && (e.mbox == nil || e.mbox.SpecialUse == "") {
			continue
		}
		d := &imap.ListData{Mailbox: name, Delim: delim, ChildInfo: childInfo}
		switch {
		case e.mbox == nil && e.hasChildren:
			d.Attrs = append(d.Attrs, imap.MailboxAttrNoSelect, imap.MailboxAttrHasChildren)
		case e.mbox == nil:
			d.Attrs = append(d.Attrs, imap.MailboxAttrNonExistent)
		case e.mbox.HasChildren || e.hasChildren:
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasChildren)
		default:
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if showSubscribed && e.subscribed {
			d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
		}
		if e.mbox != nil && e.mbox.SpecialUse != "" {
			d.Attrs = append(d.Attrs, imap.MailboxAttr(e.mbox.SpecialUse))
		}
		if lsub {
			// LSUB answers carry \Noselect only (RFC 3501 §7.2.3), as Dovecot's do.
			d.Attrs = nil
			if e.mbox == nil {
				d.Attrs = []imap.MailboxAttr{imap.MailboxAttrNoSelect}
			}
		}
		if options.ReturnStatus != nil && e.mbox != nil {
			d.Status = s.statusData(*e.mbox, options.ReturnStatus)
		}
		if err := w.WriteList(d); err != nil {
			return err
		}
	}
	return nil
}

// matchAny reports whether a LIST pattern, relative to ref, matches name. "INBOX" is
// case-insensitive (RFC 9051 §5.1), also as the first level of a pattern.
func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if goimap.MatchList(name, delim, ref, p) {
			return true
		}
		if name != "INBOX" && !strings.HasPrefix(name, "INBOX/") {
			continue
		}
		full := p
		if !strings.HasPrefix(p, store.Delimiter) && ref != "" {
			full = strings.TrimSuffix(ref, store.Delimiter) + store.Delimiter + p
		}
		if len(full) >= 5 && strings.EqualFold(full[:5], "INBOX") && goimap.MatchList(name, delim, "", "INBOX"+full[5:]) {
			return true
		}
	}
	return false
}

// hiddenSubscription reports whether a subscribed name below parent does not match the patterns.
func hiddenSubscription(parent string, subs []string, ref string, patterns []string) bool {
	for _, n := range subs {
		if strings.HasPrefix(n, parent+store.Delimiter) && !matchAny(n, ref, patterns) {
			return true
		}
	}
	return false
}
