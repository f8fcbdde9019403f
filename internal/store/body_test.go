package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/tanglemail/tanglemail/internal/crashtest"
)

// bigMsg is a message whose text has exactly textLen bytes of printable pseudo-random lines.
func bigMsg(subject string, textLen int) []byte {
	hdr := rawMsg(subject, "")
	rng := rand.New(rand.NewPCG(uint64(textLen), 7))
	text := make([]byte, textLen)
	for i := range text {
		if i%78 == 76 {
			text[i] = '\r'
		} else if i%78 == 77 {
			text[i] = '\n'
		} else {
			text[i] = byte('a' + rng.IntN(26))
		}
	}
	return append(hdr, text...)
}

// appendReader files raw through NewMessage.Body, read in small uneven steps.
func appendReader(t *testing.T, s *Store, mboxID MailboxID, raw []byte) Appended {
	t.Helper()
	a, err := s.Append(testCtx(t), NewMessage{MailboxID: mboxID, Body: iotest.HalfReader(bytes.NewReader(raw))})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return a
}

// TestBodyPiecesRoundTrip: a message filed from a reader reads back byte for byte, whole (Raw), as a
// stream (RawReader) and in ranges across piece boundaries (RawRange, what IMAP partial FETCH uses),
// for text sizes around the piece size.
func TestBodyPiecesRoundTrip(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	for _, n := range []int{0, 100, PieceSize - 1, PieceSize, PieceSize + 1, 2 * PieceSize, 3*PieceSize + 12345} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			raw := bigMsg(fmt.Sprint("size ", n), n)
			a := appendReader(t, s, inbox.ID, raw)
			wantPieces := (n + PieceSize - 1) / PieceSize
			if n < PieceSize {
				wantPieces = 0 // one row, as before migration 0006
			}
			var pieces int
			if err := s.rdb.QueryRow(`SELECT b.pieces FROM message m JOIN body b ON b.id = m.body_id
				WHERE m.mailbox_id = ? AND m.uid = ?`, inbox.ID, int64(a.UID)).Scan(&pieces); err != nil {
				t.Fatal(err)
			}
			if pieces != wantPieces {
				t.Errorf("%d pieces, want %d", pieces, wantPieces)
			}
			m, err := s.Message(ctx, inbox.ID, a.UID)
			if err != nil {
				t.Fatal(err)
			}
			hs := int64(HeaderLen(raw))
			if m.Size != int64(len(raw)) || m.HeaderSize != hs {
				t.Errorf("size %d header %d, want %d %d", m.Size, m.HeaderSize, len(raw), hs)
			}
			got, err := s.Raw(ctx, inbox.ID, a.UID)
			if err != nil || !bytes.Equal(got, raw) {
				t.Fatalf("Raw: %d bytes, %v; want %d bytes", len(got), err, len(raw))
			}
			br, err := s.RawReader(ctx, inbox.ID, a.UID)
			if err != nil {
				t.Fatal(err)
			}
			if br.Size() != int64(len(raw)) || !bytes.Equal(br.Header(), raw[:hs]) {
				t.Errorf("reader size %d header %q", br.Size(), br.Header())
			}
			if err := iotest.TestReader(br, raw); err != nil {
				t.Errorf("RawReader: %v", err)
			}
			size := int64(len(raw))
			for _, r := range [][2]int64{
				{0, 10}, {hs - 3, 10}, {hs, PieceSize}, {hs + PieceSize - 5, 10}, {hs + PieceSize, 1},
				{hs + PieceSize - 1, 2*PieceSize + 2}, {size - 7, 100}, {size, 5}, {3, size}, {hs + 1, 0},
			} {
				off, l := max(r[0], 0), r[1]
				got, err := s.RawRange(ctx, inbox.ID, a.UID, off, l)
				end := min(size, off+l)
				want := []byte{}
				if off < end {
					want = raw[off:end]
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("RawRange(%d, %d): %d bytes, %v; want %d bytes", off, l, len(got), err, len(want))
				}
			}
		})
	}
	checkCounts(t, s)
}

// TestBodyPiecesShared: content addressing holds for pieced bodies: the same bytes filed twice from a
// reader, or once as bytes, share one body; expunging the last copy removes the body and its pieces.
func TestBodyPiecesShared(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	raw := bigMsg("shared", 2*PieceSize+10)
	a1 := appendReader(t, s, inbox.ID, raw)
	a2 := appendReader(t, s, inbox.ID, raw)
	a3 := mustAppend(t, s, inbox.ID, raw)
	if n := countRows(t, s, "body"); n != 1 {
		t.Errorf("%d bodies, want 1", n)
	}
	if n := countRows(t, s, "body_piece"); n != 3 {
		t.Errorf("%d pieces, want 3", n)
	}
	res, err := s.Search(ctx, inbox.ID, SearchCriteria{Body: []string{string(raw[len(raw)-30 : len(raw)-20])}})
	if err != nil || len(res.UIDs) != 3 {
		t.Errorf("search for the last piece's text: %v, %v", res.UIDs, err)
	}
	if _, err := s.StoreFlags(ctx, inbox.ID, UIDSet{{a1.UID, a3.UID}}, FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagDeleted}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, inbox.ID); err != nil {
		t.Fatal(err)
	}
	_ = a2
	if n := countRows(t, s, "body_piece"); n != 0 {
		t.Errorf("%d pieces left after the last copy was expunged", n)
	}
	if n := countRows(t, s, "body"); n != 0 {
		t.Errorf("%d bodies left", n)
	}
}

// cutReader reads r; after n bytes it returns what cut returns.
type cutReader struct {
	r   io.Reader
	n   int
	cut func() error
}

var errBroken = errors.New("connection broken")

// failAfter reads r and fails with errBroken after n bytes.
func failAfter(r io.Reader, n int) *cutReader {
	return &cutReader{r, n, func() error { return errBroken }}
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, c.cut()
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

// TestBodyFilingFailsWhole: a reader that fails half way through the pieces fails the filing, and
// nothing of it is stored: no message, body or piece, no outbox item, counters unchanged.
func TestBodyFilingFailsWhole(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	raw := bigMsg("broken", 3*PieceSize)
	_, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Body: failAfter(bytes.NewReader(raw), len(raw)/2)})
	if !errors.Is(err, errBroken) {
		t.Fatalf("Append: %v, want the reader's error", err)
	}
	_, err = s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "alice@tangle", Rcpts: []string{"bob@tangle"},
		Body: failAfter(bytes.NewReader(raw), len(raw)-1)}})
	if !errors.Is(err, errBroken) {
		t.Fatalf("Submit: %v, want the reader's error", err)
	}
	for _, table := range []string{"message", "body", "body_piece", "outbox", "outbox_rcpt"} {
		if n := countRows(t, s, table); n != 0 {
			t.Errorf("%d rows in %s after failed filings", n, table)
		}
	}
	checkCounts(t, s)
	// The store is usable afterwards, and the same message files fine.
	appendReader(t, s, inbox.ID, raw)
}

// TestSubmitFromReader: Submit with a Body files the Sent copy and the outbox item on one body; the
// outbox reads it back whole (OutboxRaw) or as header and text (OutboxReader), and the item's size
// counts the pieces.
func TestSubmitFromReader(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	raw := bigMsg("submitted", 2*PieceSize+77)
	sub, err := s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "alice@tangle", Rcpts: []string{"bob@tangle"},
		Body: bytes.NewReader(raw)}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Submit(ctx, Submission{OutboxNew: OutboxNew{From: "alice@tangle", Rcpts: []string{"bob@tangle"},
		Body: bytes.NewReader(raw)}})
	if err != nil || !again.Duplicate || again.OutboxID != sub.OutboxID {
		t.Fatalf("resubmission: %+v, %v; want a duplicate of %d", again, err, sub.OutboxID)
	}
	it, err := s.OutboxItem(ctx, sub.OutboxID)
	if err != nil || it.Size != int64(len(raw)) {
		t.Fatalf("item size %d, %v; want %d", it.Size, err, len(raw))
	}
	got, err := s.OutboxRaw(ctx, sub.OutboxID)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("OutboxRaw: %d bytes, %v", len(got), err)
	}
	br, err := s.OutboxReader(ctx, sub.OutboxID)
	if err != nil {
		t.Fatal(err)
	}
	hs := HeaderLen(raw)
	if br.Size() != int64(len(raw)) || !bytes.Equal(br.Header(), raw[:hs]) {
		t.Fatalf("OutboxReader: size %d, header %q", br.Size(), br.Header())
	}
	if err := iotest.TestReader(br.Text(), raw[hs:]); err != nil {
		t.Error(err)
	}
	sent, err := s.Raw(ctx, sub.Sent.MailboxID, sub.Sent.UID)
	if err != nil || !bytes.Equal(sent, raw) {
		t.Fatalf("sent copy: %d bytes, %v", len(sent), err)
	}
	if n := countRows(t, s, "body"); n != 1 {
		t.Errorf("%d bodies, want 1", n)
	}
	if _, err := s.OutboxReader(ctx, 999); !errors.Is(err, ErrNoOutboxItem) {
		t.Errorf("OutboxReader of no item: %v", err)
	}
}

// TestBodyReaderBodyGone: a reader whose message is expunged (its body removed) between pieces fails
// with ErrNoMessage rather than reading something else.
func TestBodyReaderBodyGone(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	raw := bigMsg("gone", 3*PieceSize)
	a := appendReader(t, s, inbox.ID, raw)
	br, err := s.RawReader(ctx, inbox.ID, a.UID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, br, int64(HeaderLen(raw))+10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, inbox.ID, UIDSet{{a.UID, a.UID}}, FlagChange{Op: FlagsAdd, Flags: Flags{System: FlagDeleted}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, inbox.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, br); !errors.Is(err, ErrNoMessage) {
		t.Errorf("reading on: %v, want ErrNoMessage", err)
	}
}

// TestBodyMigration0006: a database from before migration 0006 (bodies in one row, no pieces table)
// opens, its messages read as before, and large messages filed afterwards are pieced.
func TestBodyMigration0006(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	s := openTestAt(t, path)
	inbox := mustMailbox(t, s, "INBOX")
	small := rawMsg("old", "small text")
	large := bigMsg("old large", 2*PieceSize) // filed as bytes: one row, as every body before 0006
	a1 := mustAppend(t, s, inbox.ID, small)
	a2 := mustAppend(t, s, inbox.ID, large)
	for _, q := range []string{`DROP TRIGGER body_delete`, `DROP TABLE body_piece`, `ALTER TABLE body DROP COLUMN pieces`,
		`DELETE FROM schema_version WHERE version = 6`} {
		if _, err := s.wdb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s = openTestAt(t, path)
	ctx := testCtx(t)
	for _, m := range []struct {
		uid UID
		raw []byte
	}{{a1.UID, small}, {a2.UID, large}} {
		got, err := s.Raw(ctx, inbox.ID, m.uid)
		if err != nil || !bytes.Equal(got, m.raw) {
			t.Errorf("uid %d after migration: %d bytes, %v", m.uid, len(got), err)
		}
		br, err := s.RawReader(ctx, inbox.ID, m.uid)
		if err != nil {
			t.Fatal(err)
		}
		if err := iotest.TestReader(br, m.raw); err != nil {
			t.Errorf("uid %d reader: %v", m.uid, err)
		}
		part, err := s.RawRange(ctx, inbox.ID, m.uid, 5, int64(len(m.raw)))
		if err != nil || !bytes.Equal(part, m.raw[5:]) {
			t.Errorf("uid %d range: %v", m.uid, err)
		}
	}
	appendReader(t, s, inbox.ID, bigMsg("new large", 2*PieceSize))
	if n := countRows(t, s, "body_piece"); n != 2 {
		t.Errorf("%d pieces, want 2", n)
	}
}

const crashChildEnv = "STORE_BODY_CRASH_CHILD"

// TestBodyFilingCrash: a process killed (SIGKILL) half way through filing a pieced message leaves
// nothing of it: after reopening there is no message, body or piece.
func TestBodyFilingCrash(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		inbox, err := s.Mailbox(testCtx(t), "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		raw := bigMsg("crash", 4*PieceSize)
		// After three pieces: say so, and block until the parent kills the process.
		block := &cutReader{bytes.NewReader(raw), 3 * PieceSize, func() error {
			fmt.Println("filing")
			select {}
		}}
		s.Append(testCtx(t), NewMessage{MailboxID: inbox.ID, Body: block})
		t.Fatal("the filing returned")
	}
	path := filepath.Join(t.TempDir(), "mail.db")
	s := openTestAt(t, path)
	s.Close()
	cmd, out := crashtest.Start(t, []string{crashChildEnv + "=" + path}, "-test.run=^TestBodyFilingCrash$", "-test.count=1")
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "filing\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	s = openTestAt(t, path)
	for _, table := range []string{"message", "body", "body_piece"} {
		if n := countRows(t, s, table); n != 0 {
			t.Errorf("%d rows in %s after the crash", n, table)
		}
	}
	checkCounts(t, s)
}
