package imapserver

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/store"
)

// benchMsg is a typical mail of about 3 KiB: the headers a mail client writes and a text body.
func benchMsg(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Return-Path: <alice@example.org>\r\nFrom: \"Alice Example\" <alice@example.org>\r\n"+
		"To: \"Bob Example\" <bob@example.org>\r\nCc: carol@example.net, dave@example.com\r\n"+
		"Subject: Re: weekly report number %d for the tangle project\r\n"+
		"Date: Mon, 02 Mar 2026 15:04:05 +0100\r\nMessage-ID: <bench.%d@example.org>\r\n"+
		"In-Reply-To: <bench.%d@example.org>\r\nReferences: <bench.%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n"+
		"Content-Transfer-Encoding: 8bit\r\nUser-Agent: Thunderbird\r\n\r\n", i, i, i-1, i-1)
	for b.Len() < 3000 {
		b.WriteString("The quick brown fox jumps over the lazy dog while the tangle keeps growing.\r\n")
	}
	return []byte(b.String())
}

// BenchmarkFetch1000 measures FETCH 1:1000 over a real connection on 127.0.0.1: one op is one FETCH
// command until its tagged OK. The client is a minimal reader in the same process, so B/op and
// allocs/op are the server's plus a small constant for the reader.
//
//	go test -run '^$' -bench Fetch1000 -benchmem -cpu 1 ./internal/imapserver
func BenchmarkFetch1000(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "mail.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	inbox := mailbox(b, st, "INBOX")
	seen, _ := store.ParseFlags(`\Seen`)
	err = st.Update(testCtx(b), func(tx *store.Tx) error {
		for i := 1; i <= 1000; i++ {
			// \Seen already, so that BODY[] does not write.
			if _, err := tx.Append(store.NewMessage{MailboxID: inbox.ID, Raw: benchMsg(i), Flags: seen,
				Received: time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ts := startServer(b, st)

	for _, bc := range []struct{ name, items string }{
		{"envelope", "(UID FLAGS RFC822.SIZE ENVELOPE)"},
		{"body", "(UID FLAGS RFC822.SIZE BODY[])"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			conn := newBenchConn(b, ts)
			c, br := conn.c, conn.br
			benchCmd(b, c, br, "b SELECT INBOX")
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if n := benchCmd(b, c, br, "f FETCH 1:1000 "+bc.items); n != 1000 {
					b.Fatalf("%d FETCH responses", n)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}

// benchCmd sends a command and reads until its tagged response, skipping literals; it returns the
// number of untagged FETCH responses.
func benchCmd(b *testing.B, c net.Conn, br *bufio.Reader, cmd string) int {
	if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
		b.Fatal(err)
	}
	tag := cmd[:strings.IndexByte(cmd, ' ')+1]
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			b.Fatal(err)
		}
		if len(line) > 2 && line[0] == '*' && strings.Contains(string(line[:min(len(line), 20)]), "FETCH") {
			n++
		}
		for err == bufio.ErrBufferFull { // a long line: read the rest, keep its end
			line, err = br.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				b.Fatal(err)
			}
		}
		if strings.HasPrefix(string(line), tag) {
			if !strings.HasPrefix(string(line[len(tag):]), "OK") {
				b.Fatalf("%s: %s", cmd, line)
			}
			return n
		}
		// A literal at the end of the line: skip its bytes.
		l := strings.TrimRight(string(line), "\r\n")
		if strings.HasSuffix(l, "}") {
			if i := strings.LastIndexByte(l, '{'); i >= 0 {
				size, err := strconv.Atoi(l[i+1 : len(l)-1])
				if err == nil {
					if _, err := br.Discard(size); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
}

// BenchmarkFetch25MiB measures downloading a 25 MiB mail (stored in pieces, as large mail is):
// FETCH 1 (UID FLAGS RFC822.SIZE BODY.PEEK[]), the literal discarded by the reader as it arrives, so
// B/op is the server's (streamed: a piece at a time, not the whole message).
//
//	go test -run '^$' -bench Fetch25MiB -benchmem ./internal/imapserver
func BenchmarkFetch25MiB(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "mail.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	raw := piecedMsgOf("large", 25<<20)
	if _, err := st.Append(testCtx(b), store.NewMessage{MailboxID: mailbox(b, st, "INBOX").ID,
		Body: bytes.NewReader(raw)}); err != nil {
		b.Fatal(err)
	}
	ts := startServer(b, st)
	conn := newBenchConn(b, ts)
	c, br := conn.c, conn.br
	benchCmd(b, c, br, "b SELECT INBOX")
	b.SetBytes(int64(len(raw)))
	raw = nil
	b.ReportAllocs()
	for b.Loop() {
		if n := benchCmd(b, c, br, "f FETCH 1 (UID FLAGS RFC822.SIZE BODY.PEEK[])"); n != 1 {
			b.Fatalf("%d FETCH responses", n)
		}
	}
}
