package imapserver

import (
	"bufio"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/store"
)

// churnCommands is one round of what a mail client sends to a mailbox it watches: select, list
// flags, search, fetch headers, status.
var churnCommands = []string{
	"s SELECT INBOX",
	"f UID FETCH 1:* (UID FLAGS)",
	"q UID SEARCH UNSEEN",
	"e FETCH 1:* (UID RFC822.SIZE ENVELOPE)",
	"h FETCH * (UID FLAGS)",
	"t STATUS Archive (MESSAGES UIDNEXT UNSEEN)",
}

// BenchmarkIMAPChurn compares commands/s against a mailbox that has seen 100,000 expunges (25 live
// messages after 100,000 APPEND+EXPUNGE cycles) with commands/s against a fresh mailbox holding the
// same 25 messages, reported as aged/fresh (goal ≥ 0.9, issue 12). The expunged rows are made
// through the store API in large transactions. One op is one round of churnCommands on each mailbox.
//
//	go test -run '^$' -bench IMAPChurn -benchtime 200x ./internal/imapserver
func BenchmarkIMAPChurn(b *testing.B) {
	const live, expunged = 25, 100000
	fresh := churnStore(b, "fresh.db", live, 0)
	aged := churnStore(b, "aged.db", live, expunged)
	conns := []*benchConn{newBenchConn(b, startServer(b, fresh)), newBenchConn(b, startServer(b, aged))}
	var took [2]time.Duration
	b.ResetTimer()
	for b.Loop() {
		for i, c := range conns {
			start := time.Now()
			for _, cmd := range churnCommands {
				benchCmd(b, c.c, c.br, cmd)
			}
			took[i] += time.Since(start)
		}
	}
	n := float64(b.N * len(churnCommands))
	freshRate, agedRate := n/took[0].Seconds(), n/took[1].Seconds()
	b.ReportMetric(freshRate, "fresh-cmd/s")
	b.ReportMetric(agedRate, "aged-cmd/s")
	b.ReportMetric(agedRate/freshRate, "aged/fresh")
}

type benchConn struct {
	c  net.Conn
	br *bufio.Reader
}

func newBenchConn(b *testing.B, ts *testServer) *benchConn {
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	cc := &benchConn{c: c, br: bufio.NewReaderSize(c, 64<<10)}
	benchCmd(b, c, cc.br, "a LOGIN "+testUser+` "`+testPass+`"`)
	return cc
}

// churnStore makes a store whose INBOX holds live messages after expunged APPEND+EXPUNGE cycles:
// the expunged messages are appended and expunged in transactions of 20,000, then the live ones
// appended.
func churnStore(b *testing.B, name string, live, expunged int) *store.Store {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), name))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	inbox := mailbox(b, st, "INBOX")
	del, _ := store.ParseFlags(`\Deleted`)
	recv := time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)
	raw := benchMsg(0)
	for done := 0; done < expunged; {
		n := min(20000, expunged-done)
		err := st.Update(testCtx(b), func(tx *store.Tx) error {
			for i := 0; i < n; i++ {
				if _, err := tx.Append(store.NewMessage{MailboxID: inbox.ID, Raw: raw, Flags: del, Received: recv}); err != nil {
					return err
				}
			}
			_, err := tx.Expunge(inbox.ID)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		done += n
	}
	err = st.Update(testCtx(b), func(tx *store.Tx) error {
		for i := 1; i <= live; i++ {
			if _, err := tx.Append(store.NewMessage{MailboxID: inbox.ID, Raw: benchMsg(i), Received: recv}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return st
}
