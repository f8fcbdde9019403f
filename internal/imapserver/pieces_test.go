package imapserver

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tanglemail/tanglemail/internal/store"
)

// piecedMsg is a multipart message whose attachment spans several store pieces (store.PieceSize).
func piecedMsg(subject string) []byte { return piecedMsgOf(subject, 3*store.PieceSize) }

// piecedMsgOf is piecedMsg of at least size bytes.
func piecedMsgOf(subject string, size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: " + subject + "\r\n" +
		"Date: Mon, 02 Mar 2026 15:04:05 +0100\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nThe data.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	src := make([]byte, 57)
	for i := 0; b.Len() < size; i++ {
		for j := range src {
			src[j] = byte(i*7 + j)
		}
		b.WriteString(base64.StdEncoding.EncodeToString(src) + "\r\n")
	}
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

// TestFetchPiecedMessage: a message stored in pieces (filed from a reader, as large mail is) fetches
// byte for byte: BODY[], HEADER, TEXT, partial ranges across piece boundaries, and MIME sections and
// BINARY the same as for a copy stored in one row.
func TestFetchPiecedMessage(t *testing.T) {
	ts := newTestServer(t)
	raw := piecedMsg("pieced")
	if _, err := ts.st.Append(testCtx(t), store.NewMessage{MailboxID: mailbox(t, ts.st, "INBOX").ID,
		Body: bytes.NewReader(raw)}); err != nil {
		t.Fatal(err)
	}
	control := piecedMsg("in one row")
	deliver(t, ts.st, "INBOX", control)
	c := ts.client(t)
	selectBox(t, c, "INBOX")

	hs := int64(store.HeaderLen(raw))
	size := int64(len(raw))
	whole := &imap.FetchItemBodySection{Peek: true}
	header := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader}
	text := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierText}
	want := map[*imap.FetchItemBodySection][]byte{whole: raw, header: raw[:hs], text: raw[hs:]}
	for _, r := range [][2]int64{{0, 100}, {hs - 10, 20}, {hs + store.PieceSize - 10, 20},
		{hs + store.PieceSize, 2 * store.PieceSize}, {size - 50, 100}} {
		want[&imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: r[0], Size: r[1]}}] =
			raw[r[0]:min(size, r[0]+r[1])]
	}
	for bs, w := range want {
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{bs}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("fetch: %v", err)
		}
		if got := msgs[0].FindBodySection(bs); !bytes.Equal(got, w) {
			t.Errorf("%s%v: %d bytes differ from the %d stored", bs.Specifier, bs.Partial, len(got), len(w))
		}
	}

	sections := []*imap.FetchItemBodySection{{Peek: true, Part: []int{1}}, {Peek: true, Part: []int{2}},
		{Peek: true, Part: []int{2}, Specifier: imap.PartSpecifierMIME}}
	binary := &imap.FetchItemBinarySection{Peek: true, Part: []int{2}}
	var got [2]*imapclient.FetchMessageBuffer
	for i := range got {
		msgs, err := c.Fetch(imap.SeqSetNum(uint32(i+1)), &imap.FetchOptions{RFC822Size: true,
			BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, BodySection: sections,
			BinarySection: []*imap.FetchItemBinarySection{binary}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("fetch: %v", err)
		}
		got[i] = msgs[0]
	}
	if got[0].RFC822Size != size {
		t.Errorf("RFC822.SIZE %d, want %d", got[0].RFC822Size, size)
	}
	for _, bs := range sections {
		a, b := got[0].FindBodySection(bs), got[1].FindBodySection(bs)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("BODY[%v%s]: %d bytes pieced, %d in one row", bs.Part, bs.Specifier, len(a), len(b))
		}
	}
	a, b := got[0].FindBinarySection(binary), got[1].FindBinarySection(binary)
	if len(a) < 2*store.PieceSize || !bytes.Equal(a, b) {
		t.Errorf("BINARY[2]: %d bytes pieced, %d in one row", len(a), len(b))
	}
	if mp, ok := got[0].BodyStructure.(*imap.BodyStructureMultiPart); !ok || len(mp.Children) != 2 ||
		!reflect.DeepEqual(got[0].BodyStructure, got[1].BodyStructure) {
		t.Errorf("BODYSTRUCTURE of the pieced message is not that of the copy in one row")
	}
}

// TestFetchStreamsLargeMessage: a large message's BODY[] and BODY[TEXT] are streamed from the store
// (never read whole) and arrive byte for byte, with the header items beside them; without PEEK the
// message gets \Seen; a small message and a FETCH that needs the MIME structure are read whole.
func TestFetchStreamsLargeMessage(t *testing.T) {
	ts := newTestServer(t)
	raw := piecedMsgOf("large", streamAbove+3*store.PieceSize/2)
	if _, err := ts.st.Append(testCtx(t), store.NewMessage{MailboxID: mailbox(t, ts.st, "INBOX").ID,
		Body: bytes.NewReader(raw)}); err != nil {
		t.Fatal(err)
	}
	deliver(t, ts.st, "INBOX", plainMsg("small", "a small one"))
	c := ts.client(t)
	selectBox(t, c, "INBOX")
	hs := store.HeaderLen(raw)

	whole := &imap.FetchItemBodySection{}
	text := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierText}
	fields := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}
	for _, tc := range []struct {
		bs   *imap.FetchItemBodySection
		want []byte
	}{{text, raw[hs:]}, {whole, raw}} {
		before := streamedSections.Load()
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true,
			Envelope: true, BodySection: []*imap.FetchItemBodySection{tc.bs, fields}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("fetch: %v", err)
		}
		m := msgs[0]
		if got := m.FindBodySection(tc.bs); !bytes.Equal(got, tc.want) {
			t.Errorf("BODY[%s]: %d bytes differ from the %d stored", tc.bs.Specifier, len(got), len(tc.want))
		}
		if got := string(m.FindBodySection(fields)); got != "Subject: large\r\n\r\n" {
			t.Errorf("BODY[HEADER.FIELDS (Subject)] = %q", got)
		}
		if m.Envelope == nil || m.Envelope.Subject != "large" || m.RFC822Size != int64(len(raw)) {
			t.Errorf("envelope %+v, size %d; want subject large, size %d", m.Envelope, m.RFC822Size, len(raw))
		}
		if n := streamedSections.Load() - before; n != 1 {
			t.Errorf("%d sections streamed, want 1", n)
		}
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 || !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("after BODY[] without PEEK: %v, %v; want \\Seen", msgs, err)
	}

	before := streamedSections.Load()
	peek := &imap.FetchItemBodySection{Peek: true}
	for _, o := range []*imap.FetchOptions{
		{BodySection: []*imap.FetchItemBodySection{peek}},                                                // small message
		{BodySection: []*imap.FetchItemBodySection{peek}, BodyStructure: &imap.FetchItemBodyStructure{}}, // needs the structure
	} {
		seq := imap.SeqSetNum(2)
		if o.BodyStructure != nil {
			seq = imap.SeqSetNum(1)
		}
		msgs, err := c.Fetch(seq, o).Collect()
		if err != nil || len(msgs) != 1 || len(msgs[0].FindBodySection(peek)) == 0 {
			t.Fatalf("fetch: %v", err)
		}
	}
	if n := streamedSections.Load() - before; n != 0 {
		t.Errorf("%d sections streamed, want 0 (read whole)", n)
	}
}
