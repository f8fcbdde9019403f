package imapserver

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Mail-client stress load on one mailbox (issue 16): stressClients concurrent go-imap/v2 clients, each
// logged in on its own connection, repeat a round of stressRound's commands on INBOX, which starts
// with stressSeed messages of about 3 KiB (benchMsg):
//
//	SELECT INBOX                        reopen the mailbox
//	FETCH 1:* (UID FLAGS)               resynchronise flags
//	UID FETCH u BODY.PEEK[]             read a random message (UID u picked from the first fetch)
//	UID STORE u +FLAGS (\Seen)          mark it read
//	APPEND INBOX                        a new message (4 KiB)
//	UID STORE a +FLAGS (\Deleted)       the message just appended (UID a from APPENDUID, RFC 4315)
//	EXPUNGE                             remove what is deleted
//
// so the mailbox keeps its size. BenchmarkIMAPStress reports cmds/s (all clients together, wall time)
// for this server on a fresh store and, as sub-benchmark server=dovecot, for a private Dovecot (Debian's
// dovecot-imapd, run by startDovecot from its own config directory on 127.0.0.1, maildir, default
// fsync settings) under the same clients: the side-by-side comparison of issue 16. One op is one round
// of one client.
//
//	go test -run '^$' -bench IMAPStress -benchtime 300x -count 5 ./internal/imapserver
const (
	stressClients = 10
	stressSeed    = 100
	stressRound   = 7 // commands per round
)

func BenchmarkIMAPStress(b *testing.B) {
	b.Run("server=tanglemail", func(b *testing.B) {
		st := openStore(b, filepath.Join(b.TempDir(), "mail.db"))
		ts := startServer(b, st)
		benchIMAPStress(b, ts.addr, testUser, testPass)
	})
	b.Run("server=dovecot", func(b *testing.B) {
		const pass = "dovecot-reference" // static passdb args are split at spaces
		benchIMAPStress(b, startDovecot(b, pass), testUser, pass)
	})
}

func benchIMAPStress(b *testing.B, addr, user, pass string) {
	clients := make([]*imapclient.Client, stressClients)
	for i := range clients {
		c, err := imapclient.DialInsecure(addr, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		if err := c.Login(user, pass).Wait(); err != nil {
			b.Fatalf("login: %v", err)
		}
		clients[i] = c
	}
	for i := range stressSeed {
		if _, err := stressAppend(clients[0], benchMsg(i)); err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
	msg := benchMsg(stressSeed + 1)
	msg = append(msg, bytes.Repeat([]byte("Another line of text so that the new mail is 4 KiB long.\r\n"), 18)...)

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, stressClients)
	b.ResetTimer()
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), 16))
			for next.Add(1) <= int64(b.N) {
				if err := stressOneRound(c, rnd, msg); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*stressRound)/elapsed.Seconds(), "cmds/s")
}

// stressOneRound sends one round of the stress load's commands on c.
func stressOneRound(c *imapclient.Client, rnd *rand.Rand, msg []byte) error {
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return fmt.Errorf("fetch flags: %w", err)
	}
	var u imap.UID = 1
	if len(msgs) > 0 {
		u = msgs[rnd.IntN(len(msgs))].UID
	}
	one := imap.UIDSetNum(u)
	if _, err := c.Fetch(one, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect(); err != nil {
		return fmt.Errorf("fetch body: %w", err)
	}
	if err := c.Store(one, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		return fmt.Errorf("store seen: %w", err)
	}
	a, err := stressAppend(c, msg)
	if err != nil {
		return err
	}
	if err := c.Store(imap.UIDSetNum(a), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return fmt.Errorf("store deleted: %w", err)
	}
	if err := c.Expunge().Close(); err != nil {
		return fmt.Errorf("expunge: %w", err)
	}
	return nil
}

// stressAppend appends msg to INBOX and returns its UID (APPENDUID).
func stressAppend(c *imapclient.Client, msg []byte) (imap.UID, error) {
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	d, err := cmd.Wait()
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if d.UID == 0 {
		return 0, fmt.Errorf("append: no APPENDUID")
	}
	return d.UID, nil
}
