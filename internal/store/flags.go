package store

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// UID is a message's unique identifier within its mailbox (RFC 3501 §2.3.1.1).
type UID uint32

// SystemFlags is a set of IMAP system flags, as bits.
type SystemFlags uint8

// System flag bits. The values are stored in the database; do not renumber.
const (
	FlagSeen SystemFlags = 1 << iota
	FlagAnswered
	FlagFlagged
	FlagDeleted
	FlagDraft
)

var systemFlagNames = []struct {
	bit  SystemFlags
	name string
}{
	{FlagSeen, `\Seen`},
	{FlagAnswered, `\Answered`},
	{FlagFlagged, `\Flagged`},
	{FlagDeleted, `\Deleted`},
	{FlagDraft, `\Draft`},
}

// Keywords the node itself sets. The outbox sets DeliveredKeyword and chat sets ReadKeyword; they live
// here, with the flags they are stored in, so that those engines need not import each other.
const (
	// DeliveredKeyword is the IMAP keyword set on a message's Sent copy once every recipient's node has
	// sent its receipt: what lets the user see, in any mail client, that the mail arrived.
	DeliveredKeyword = "$Delivered"
	// ReadKeyword is set on the user's copy of a chat message once every recipient has read it.
	ReadKeyword = "$Read"
	// E2EKeyword is set on a message's Sent copy when the node encrypted it end to end (OpenPGP) for
	// its Internet recipients before it left (docs/protocol.md §16.5): the Sent copy itself stays the
	// readable message, so the keyword is how the user's clients learn it went encrypted.
	E2EKeyword = "$E2E"
)

// Flags are a message's stored flags: system flags and keywords. Keywords are IMAP atoms, compared
// case-insensitively (RFC 9051 §2.3.2) but kept as first written ("$Forwarded" stays
// "$Forwarded", as in Dovecot): in a mailbox, a keyword takes the spelling the mailbox first saw.
// They are sorted case-insensitively and without duplicates.
// Values built with ParseFlags are normalised; the store normalises any other value it is given.
type Flags struct {
	System   SystemFlags
	Keywords []string
}

// ParseFlags parses IMAP flag names: the system flags (case-insensitively) and keywords. \Recent is
// ignored (it is session state, not stored); any other name starting with a backslash, and keywords
// that are not atoms, give ErrInvalidFlag.
func ParseFlags(names ...string) (Flags, error) {
	var f Flags
	for _, n := range names {
		if strings.HasPrefix(n, `\`) {
			bit, ok := systemFlag(n)
			if !ok {
				if strings.EqualFold(n, `\Recent`) {
					continue
				}
				return Flags{}, fmt.Errorf("%w: %q", ErrInvalidFlag, n)
			}
			f.System |= bit
			continue
		}
		if !validKeyword(n) {
			return Flags{}, fmt.Errorf("%w: %q", ErrInvalidFlag, n)
		}
		f.Keywords = append(f.Keywords, n)
	}
	f.Keywords = normKeywords(f.Keywords)
	return f, nil
}

func systemFlag(name string) (SystemFlags, bool) {
	for _, sf := range systemFlagNames {
		if strings.EqualFold(name, sf.name) {
			return sf.bit, true
		}
	}
	return 0, false
}

// validKeyword reports whether k is an IMAP atom usable as a keyword (RFC 3501 §9 flag-keyword).
func validKeyword(k string) bool {
	if k == "" || len(k) > 200 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// normKeywords sorts keywords case-insensitively and drops case-insensitive duplicates; of two
// spellings the earlier in kw is kept.
func normKeywords(kw []string) []string {
	if len(kw) == 0 {
		return nil
	}
	out := slices.Clone(kw)
	sort.SliceStable(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return slices.CompactFunc(out, strings.EqualFold)
}

// spelled returns kw with each keyword in the spelling known already (case-insensitively), if any.
func spelled(kw, known []string) []string {
	if len(kw) == 0 || len(known) == 0 {
		return kw
	}
	out := make([]string, len(kw))
	for i, k := range kw {
		out[i] = k
		for _, n := range known {
			if strings.EqualFold(k, n) {
				out[i] = n
				break
			}
		}
	}
	return out
}

// normalize validates f and returns it in canonical form.
func (f Flags) normalize() (Flags, error) {
	for _, k := range f.Keywords {
		if !validKeyword(k) {
			return Flags{}, fmt.Errorf("%w: %q", ErrInvalidFlag, k)
		}
	}
	return Flags{System: f.System & (FlagSeen | FlagAnswered | FlagFlagged | FlagDeleted | FlagDraft),
		Keywords: normKeywords(f.Keywords)}, nil
}

// Strings returns the flags as IMAP flag names: system flags first, then keywords.
func (f Flags) Strings() []string {
	var out []string
	for _, sf := range systemFlagNames {
		if f.System&sf.bit != 0 {
			out = append(out, sf.name)
		}
	}
	return append(out, f.Keywords...)
}

// Has reports whether f contains the flag with the IMAP name name (case-insensitive).
func (f Flags) Has(name string) bool {
	if bit, ok := systemFlag(name); ok {
		return f.System&bit != 0
	}
	return slices.ContainsFunc(f.Keywords, func(k string) bool { return strings.EqualFold(k, name) })
}

// Equal reports whether f and g hold the same flags (both normalised), keywords compared
// case-insensitively.
func (f Flags) Equal(g Flags) bool {
	return f.System == g.System && slices.EqualFunc(f.Keywords, g.Keywords, strings.EqualFold)
}

func (f Flags) union(g Flags) Flags {
	return Flags{System: f.System | g.System, Keywords: normKeywords(append(slices.Clone(f.Keywords), g.Keywords...))}
}

func (f Flags) minus(g Flags) Flags {
	var kw []string
	for _, k := range f.Keywords {
		if !g.Has(k) {
			kw = append(kw, k)
		}
	}
	return Flags{System: f.System &^ g.System, Keywords: kw}
}

// keywordsColumn and parseKeywordsColumn convert keywords to and from their column form: sorted,
// separated by single spaces.
func keywordsColumn(kw []string) string { return strings.Join(kw, " ") }

func parseKeywordsColumn(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// UIDRange is the closed range Start..Stop. A range with Stop < Start means Stop..Start. Resolving
// IMAP's "*" to a number is the caller's job.
type UIDRange struct {
	Start, Stop UID
}

// UIDSet is a union of ranges.
type UIDSet []UIDRange

// UIDSetOf returns the set holding exactly uids.
func UIDSetOf(uids ...UID) UIDSet {
	var s UIDSet
	for _, u := range uids {
		s = append(s, UIDRange{u, u})
	}
	return s.normalize()
}

// Contains reports whether uid is in the set.
func (s UIDSet) Contains(uid UID) bool {
	for _, r := range s {
		lo, hi := r.Start, r.Stop
		if hi < lo {
			lo, hi = hi, lo
		}
		if uid >= lo && uid <= hi {
			return true
		}
	}
	return false
}

// normalize returns the set as sorted, disjoint, non-adjacent ranges with Start <= Stop.
func (s UIDSet) normalize() UIDSet {
	if len(s) == 0 {
		return nil
	}
	rs := make(UIDSet, 0, len(s))
	for _, r := range s {
		if r.Stop < r.Start {
			r.Start, r.Stop = r.Stop, r.Start
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if uint64(r.Start) <= uint64(last.Stop)+1 {
			if r.Stop > last.Stop {
				last.Stop = r.Stop
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// containsNormalized is Contains for a normalised set, by binary search.
func (s UIDSet) containsNormalized(uid UID) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].Stop >= uid })
	return i < len(s) && s[i].Start <= uid
}

// maxSQLRanges is the most ranges a UID condition spells out in SQL; larger sets are bounded by their
// minimum and maximum in SQL and filtered exactly in Go.
const maxSQLRanges = 64

// uidCond returns an SQL condition on column col that selects the set (exactly when exact, else a
// superset). s must be normalised and non-empty.
func uidCond(col string, s UIDSet) (cond string, args []any, exact bool) {
	if len(s) > maxSQLRanges {
		return col + " BETWEEN ? AND ?", []any{int64(s[0].Start), int64(s[len(s)-1].Stop)}, false
	}
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = col + " BETWEEN ? AND ?"
		args = append(args, int64(r.Start), int64(r.Stop))
	}
	return "(" + strings.Join(parts, " OR ") + ")", args, true
}
