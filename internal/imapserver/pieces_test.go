package imapserver

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tanglemail/tanglemail/internal/store"
)

// piecedMsg is a multipart message whose attachment spans several store pieces (store.PieceSize).
func piecedMsg(subject string) []byte {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: " + subject + "\r\n" +
		"Date: Mon, 02 Mar 2026 15:04:05 +0100\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nThe data.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	src := make([]byte, 57)
	for i := 0; b.Len() < 3*store.PieceSize; i++ {
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
