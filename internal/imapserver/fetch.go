package imapserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	goimap "github.com/emersion/go-imap/v2/imapserver"

	"github.com/tanglemail/tanglemail/internal/mimepart"
	"github.com/tanglemail/tanglemail/internal/store"
)

// Fetch: FETCH and UID FETCH (RFC 9051 §6.4.5), with BINARY (RFC 3516). Flags, sizes and dates of all
// requested messages come from one listing; bytes are read per message, only as far as the items
// need: nothing, the header (ENVELOPE, BODY[HEADER…]), a byte range (BODY[]<o.n>), or the whole
// message. A large message (above streamAbove) whose items need at most its header besides BODY[] or
// BODY[TEXT] (the common "download this mail" FETCH of mail clients) is streamed from the store a
// piece at a time, never held whole. BODY[], BODY[HEADER], BODY[TEXT] and their partials are the
// stored bytes as they are, so they always agree with RFC822.SIZE; other sections go through
// go-imap's MIME helpers. Messages expunged by another session since the client learned of them are
// left out.
func (s *session) Fetch(w *goimap.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil {
		return errMailboxGone
	}
	if err := sel.checkSeq(numSet); err != nil {
		return err
	}
	idx := sel.resolve(numSet)
	if len(idx) == 0 {
		return nil
	}
	listing, err := s.srv.st.List(s.ctx, sel.id, store.ListQuery{UIDs: sel.uidSet(idx)})
	if err != nil {
		return s.storeErr("fetch", err)
	}
	infos := make(map[store.UID]*store.MessageInfo, len(listing.Messages))
	for i := range listing.Messages {
		infos[listing.Messages[i].UID] = &listing.Messages[i]
	}

	// A body section without PEEK sets \Seen (RFC 9051 §6.4.5), except in EXAMINE; the new flags are
	// part of the FETCH response.
	setSeen := map[store.UID]bool{}
	if !sel.readOnly && wantsSeen(options) {
		var unseen []store.UID
		for _, mi := range listing.Messages {
			if mi.Flags.System&store.FlagSeen == 0 {
				unseen = append(unseen, mi.UID)
			}
		}
		if len(unseen) > 0 {
			res, err := s.srv.st.StoreFlags(s.ctx, sel.id, store.UIDSetOf(unseen...),
				store.FlagChange{Op: store.FlagsAdd, Flags: store.Flags{System: store.FlagSeen}})
			if err != nil {
				return s.storeErr("fetch", err)
			}
			var reported []store.UID
			for _, fr := range res.Messages {
				if mi := infos[fr.UID]; mi != nil {
					mi.Flags = fr.Flags
					setSeen[fr.UID] = true
					reported = append(reported, fr.UID)
				}
			}
			sel.ownFlags(res.ModSeq, reported, true)
		}
	}

	need := needOf(options)
	cc, _ := s.conn.NetConn().(*cmdConn) // nil on connections that were TLS from the start
	checked := time.Now()
	for _, i := range idx {
		uid := sel.uids[i]
		mi := infos[uid]
		if mi == nil {
			continue // expunged meanwhile
		}
		if err := s.ctx.Err(); err != nil {
			return s.storeErr("fetch", err) // the server is closing
		}
		if cc != nil && time.Since(checked) > 50*time.Millisecond {
			if cc.gone() {
				return errClientGone
			}
			checked = time.Now()
		}
		var data msgData
		if err := s.load(sel.id, mi, need, options, &data); err != nil {
			if errors.Is(err, store.ErrNoMessage) {
				continue
			}
			return s.storeErr("fetch", err)
		}
		if err := writeFetch(w.CreateMessage(uint32(i+1)), mi, options, setSeen[uid], &data, cc); err != nil {
			if errors.Is(err, errStreamBroken) {
				s.log.Info("imap: closing the connection: a streamed message could not be completed", "err", err)
				s.conn.NetConn().Close()
			}
			return err
		}
	}
	return nil
}

// errClientGone ends a FETCH whose client has closed the connection; go-imap then ends the
// connection when it writes the answer.
var errClientGone = errors.New("imapserver: client closed the connection")

// wantsSeen reports whether the items include a body section without PEEK.
func wantsSeen(o *imap.FetchOptions) bool {
	for _, bs := range o.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range o.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// need says which bytes of a message a FETCH needs.
type need int

const (
	needNothing need = iota
	needHeader
	needRange // one BODY[]<o.n> and nothing else
	// needStream: one BODY[] or BODY[TEXT] without a range, besides at most header items: a large
	// message is streamed, a small one read whole (needAll).
	needStream
	needAll
)

// streamedSections counts the sections written by writeStreamed, for the tests.
var streamedSections atomic.Int64

// streamAbove is the size above which a needStream message is streamed rather than read whole.
const streamAbove = 1 << 20

// streamed reports whether bs is the one section a needStream FETCH streams.
func streamed(bs *imap.FetchItemBodySection) bool {
	return len(bs.Part) == 0 && len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0 && bs.Partial == nil &&
		(bs.Specifier == imap.PartSpecifierNone || bs.Specifier == imap.PartSpecifierText)
}

func needOf(o *imap.FetchOptions) need {
	n := needNothing
	if o.Envelope {
		n = needHeader
	}
	if o.BodyStructure != nil || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
		return needAll
	}
	stream := 0
	for _, bs := range o.BodySection {
		switch {
		case len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader:
			// BODY[HEADER], BODY[HEADER.FIELDS (…)]
		case len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone && bs.Partial != nil &&
			len(o.BodySection) == 1 && n == needNothing:
			return needRange
		case streamed(bs):
			stream++
		default:
			return needAll
		}
		n = needHeader
	}
	switch stream {
	case 0:
		return n
	case 1:
		return needStream
	default:
		return needAll
	}
}

// msgData is what load read for one message.
type msgData struct {
	raw    []byte // whole message (needAll)
	header []byte // header section incl. the blank line (needHeader, needAll)
	part   []byte // the one partial section (needRange)
	tree   *mimepart.Part
	body   *store.BodyReader // the message, for its one streamed section (needStream, large)
}

// mime returns the message's MIME structure, parsed on first use.
func (d *msgData) mime() *mimepart.Part {
	if d.tree == nil {
		d.tree = mimepart.Parse(d.raw)
	}
	return d.tree
}

func (s *session) load(mailboxID store.MailboxID, mi *store.MessageInfo, n need, o *imap.FetchOptions, d *msgData) error {
	var err error
	switch n {
	case needHeader:
		d.header, err = s.srv.st.RawHeader(s.ctx, mailboxID, mi.UID)
	case needRange:
		p := o.BodySection[0].Partial
		if p.Offset >= mi.Size || p.Size <= 0 {
			d.part = []byte{}
			return nil
		}
		d.part, err = s.srv.st.RawRange(s.ctx, mailboxID, mi.UID, p.Offset, p.Size)
	case needStream:
		if mi.Size > streamAbove {
			d.body, err = s.srv.st.RawReader(s.ctx, mailboxID, mi.UID)
			if err == nil {
				d.header = d.body.Header()
			}
			return err
		}
		fallthrough
	case needAll:
		d.raw, err = s.srv.st.Raw(s.ctx, mailboxID, mi.UID)
		if err == nil {
			d.header = d.raw[:store.HeaderLen(d.raw)]
		}
	}
	return err
}

// binaryItem is a BINARY item's name and literal as go-imap writes it.
func binaryItem(part []int, origin string, size int) string {
	ps := make([]string, len(part))
	for i, n := range part {
		ps[i] = strconv.Itoa(n)
	}
	return fmt.Sprintf("BINARY[%s]%s ~{%d}\r\n", strings.Join(ps, "."), origin, size)
}

// writeFetch writes one message's FETCH response. cc, if not nil, is the connection, for the origin
// of partial BINARY items.
func writeFetch(rw *goimap.FetchResponseWriter, mi *store.MessageInfo, o *imap.FetchOptions, seenSet bool, d *msgData, cc *cmdConn) error {
	if o.UID {
		rw.WriteUID(imap.UID(mi.UID))
	}
	if o.Flags || seenSet {
		rw.WriteFlags(imapFlags(mi.Flags))
	}
	if o.InternalDate {
		rw.WriteInternalDate(mi.Received)
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(mi.Size)
	}
	if o.Envelope {
		rw.WriteEnvelope(envelope(d.header))
	}
	if o.BodyStructure != nil {
		rw.WriteBodyStructure(bodyStructure(d.raw, d.mime()))
	}
	for _, bs := range o.BodySection {
		if d.body != nil && streamed(bs) {
			if err := writeStreamed(rw, bs, d.body); err != nil {
				return err
			}
			continue
		}
		b := bodySection(bs, d)
		if err := writeLiteral(rw.WriteBodySection(bs, int64(len(b))), b); err != nil {
			return err
		}
	}
	for _, bs := range o.BinarySection {
		b, err := binarySection(d.raw, d.mime(), bs.Part)
		if err != nil {
			return err
		}
		b = partial(b, bs.Partial)
		if bs.Partial != nil && cc != nil {
			cc.rewriteNext(binaryItem(bs.Part, "", len(b)), binaryItem(bs.Part, fmt.Sprintf("<%d>", bs.Partial.Offset), len(b)))
		}
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(b))), b); err != nil {
			return err
		}
	}
	for _, bss := range o.BinarySectionSize {
		b, err := binarySection(d.raw, d.mime(), bss.Part)
		if err != nil {
			return err
		}
		rw.WriteBinarySectionSize(bss, uint32(len(b)))
	}
	return rw.Close()
}

// errStreamBroken ends the connection: a streamed literal could not be completed (the message's
// body went away while it was read), and a literal shorter than announced would desynchronise the
// client.
var errStreamBroken = errors.New("imapserver: message removed while it was being sent")

// writeStreamed writes BODY[] or BODY[TEXT] from the message's reader, a store piece at a time.
func writeStreamed(rw *goimap.FetchResponseWriter, bs *imap.FetchItemBodySection, body *store.BodyReader) error {
	size := body.Size()
	var src io.Reader = body
	if bs.Specifier == imap.PartSpecifierText {
		size -= int64(len(body.Header()))
		src = body.Text()
	}
	streamedSections.Add(1)
	wc := rw.WriteBodySection(bs, size)
	n, err := io.Copy(wc, io.LimitReader(src, size))
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		wc.Close()
		return fmt.Errorf("%w: %v", errStreamBroken, err)
	}
	return wc.Close()
}

func writeLiteral(wc interface {
	Write([]byte) (int, error)
	Close() error
}, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// bodySection returns the bytes of a BODY[…] item.
func bodySection(bs *imap.FetchItemBodySection, d *msgData) []byte {
	if d.part != nil {
		return d.part
	}
	if len(bs.Part) == 0 && len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0 {
		switch bs.Specifier {
		case imap.PartSpecifierNone:
			return partial(d.raw, bs.Partial)
		case imap.PartSpecifierHeader:
			return partial(d.header, bs.Partial)
		case imap.PartSpecifierText:
			return partial(d.raw[len(d.header):], bs.Partial)
		}
	}
	if len(bs.Part) == 0 {
		// HEADER.FIELDS (NOT) of the message: go-imap's filter over the header alone.
		src := d.raw
		if src == nil {
			src = d.header // header-only sections were loaded without the body
		}
		b := goimap.ExtractBodySection(bytes.NewReader(src[:store.HeaderLen(src)]), bs)
		if b == nil {
			b = []byte{}
		}
		return b
	}
	b := partial(partSection(d.raw, d.mime(), bs), bs.Partial)
	if b == nil {
		b = []byte{}
	}
	return b
}

// partial applies <offset.size> (RFC 9051 §6.4.5): bytes from offset, at most size.
func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset < 0 || p.Offset >= int64(len(b)) || p.Size <= 0 {
		return []byte{}
	}
	end := int64(len(b))
	if p.Size < end-p.Offset {
		end = p.Offset + p.Size
	}
	return b[p.Offset:end]
}
