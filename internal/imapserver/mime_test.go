package imapserver

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/tanglemail/tanglemail/internal/mimepart"
	"github.com/tanglemail/tanglemail/internal/mimepart/mimeparttest"
	"github.com/tanglemail/tanglemail/internal/store"
)

// A deeply nested mail is filed and answered: BODYSTRUCTURE nests mimepart.MaxDepth levels and ends
// in an opaque application/octet-stream part; parts beyond it are served from that part's bytes.
func TestFetchBodyStructureDeep(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", mimeparttest.Bomb(20000))
	c := ts.client(t)
	selectBox(t, c, "INBOX")
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v", err)
	}
	depth := 0
	bs := msgs[0].BodyStructure
	for {
		mp, ok := bs.(*imap.BodyStructureMultiPart)
		if !ok {
			break
		}
		depth++
		bs = mp.Children[0]
	}
	leaf := bs.(*imap.BodyStructureSinglePart)
	if depth != mimepart.MaxDepth || leaf.MediaType() != "application/octet-stream" {
		t.Errorf("depth %d, leaf %s; want %d and application/octet-stream", depth, leaf.MediaType(), mimepart.MaxDepth)
	}
	r := ts.rawLogin(t)
	r.ok("EXAMINE INBOX")
	deep := strings.TrimSuffix(strings.Repeat("1.", mimepart.MaxDepth+1), ".")
	u := r.ok("FETCH 1 (BODY.PEEK[%s]<0.20> BINARY.SIZE[%s])", deep, deep)
	if !has(u, "{20}\r\n--b100\r\nContent-Ty") {
		t.Errorf("opaque part: %q", u)
	}
	// SEARCH BODY reads the text parts within the same bounds.
	if u := r.ok("SEARCH BODY bottom"); !has(u, "* SEARCH") {
		t.Errorf("search: %q", u)
	}
}

// BenchmarkFetchBodyStructureDeep measures FETCH 1 BODYSTRUCTURE of the 20,000-level mail over a
// real connection on 127.0.0.1, in ms per command (goal ≤ 50 ms, issue 12).
//
//	go test -run '^$' -bench FetchBodyStructureDeep -benchtime 20x ./internal/imapserver
func BenchmarkFetchBodyStructureDeep(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "mail.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	deliver(b, st, "INBOX", mimeparttest.Bomb(20000))
	ts := startServer(b, st)
	conn := newBenchConn(b, ts)
	c, br := conn.c, conn.br
	benchCmd(b, c, br, "b SELECT INBOX")
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if n := benchCmd(b, c, br, "f FETCH 1 BODYSTRUCTURE"); n != 1 {
			b.Fatalf("%d FETCH responses", n)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms")
}

// A partial BINARY response names its origin (RFC 3516 §4.2: "BINARY[1]<2> ~{5}").
func TestFetchBinaryPartialOrigin(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", multipartMsg)
	r := ts.rawLogin(t)
	r.ok("EXAMINE INBOX")
	u := r.ok("FETCH 1 (BINARY.PEEK[1.1]<6.3> BINARY.PEEK[1.1] BINARY.PEEK[2]<0.4> BODY.PEEK[1.1]<0.5>)")
	for _, want := range []string{"BINARY[1.1]<6> ~{3}\r\nBob", "BINARY[1.1] ~{33}\r\nHello Bob,", "BINARY[2]<0> ~{4}\r\n%PDF", "BODY[1.1]<0> {5}\r\nHello"} {
		if !has(u, want) {
			t.Errorf("missing %q in %q", want, u)
		}
	}
	r.ok("NOOP")
}
