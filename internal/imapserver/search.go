package imapserver

import (
	"slices"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"

	"github.com/tanglemail/tanglemail/internal/store"
)

// Search: SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH return options MIN, MAX, ALL, COUNT
// (RFC 4731 §3.1) and SAVE (RFC 5182). The criteria become a store.SearchCriteria: sequence sets and
// "*" are resolved against the session's view into UID sets, the rest maps one to one. Results are
// limited to the messages the client knows.
func (s *session) Search(kind goimap.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil {
		return nil, errMailboxGone
	}
	var (
		uids []store.UID
		err  error
	)
	if len(sel.uids) > 0 {
		var res store.SearchResult
		res, err = s.srv.st.Search(s.ctx, sel.id, sel.criteria(criteria))
		if err != nil {
			return nil, s.storeErr("search", err)
		}
		uids = res.UIDs
	}
	data := &imap.SearchData{}
	var (
		seqs   imap.SeqSet
		uidSet imap.UIDSet
		saved  []store.UID
	)
	for _, u := range uids {
		i := sel.index(u)
		if i < 0 {
			continue
		}
		saved = append(saved, u)
		num := uint32(u)
		if kind == goimap.NumKindSeq {
			num = uint32(i + 1)
			seqs.AddNum(num)
		} else {
			uidSet.AddNum(imap.UID(u))
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	if kind == goimap.NumKindSeq {
		data.All = seqs
	} else {
		data.All = uidSet
	}
	if options != nil && options.ReturnSave {
		sel.saved = saved
	}
	return data, nil
}

// criteria translates go-imap search criteria to the store's.
func (sel *selected) criteria(c *imap.SearchCriteria) store.SearchCriteria {
	var out store.SearchCriteria
	for _, set := range c.SeqNum {
		out.UID = append(out.UID, sel.uidSet(sel.resolve(set)))
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			out.UID = append(out.UID, sel.uidSet(sel.indexes(sel.saved)))
			continue
		}
		out.UID = append(out.UID, sel.uidSet(sel.resolve(set)))
	}
	for i := range out.UID {
		if len(out.UID[i]) == 0 {
			out.UID[i] = store.UIDSet{} // non-nil empty: matches nothing
		}
	}
	out.Since, out.Before = c.Since, c.Before
	out.SentSince, out.SentBefore = c.SentSince, c.SentBefore
	for _, h := range c.Header {
		out.Header = append(out.Header, store.HeaderMatch{Key: h.Key, Value: h.Value})
	}
	out.Body = slices.Clone(c.Body)
	out.Text = slices.Clone(c.Text)
	for _, f := range c.Flag {
		out.Flag = append(out.Flag, string(f))
	}
	for _, f := range c.NotFlag {
		out.NotFlag = append(out.NotFlag, string(f))
	}
	out.Larger, out.Smaller = c.Larger, c.Smaller
	for i := range c.Not {
		out.Not = append(out.Not, sel.criteria(&c.Not[i]))
	}
	for i := range c.Or {
		out.Or = append(out.Or, [2]store.SearchCriteria{sel.criteria(&c.Or[i][0]), sel.criteria(&c.Or[i][1])})
	}
	return out
}
