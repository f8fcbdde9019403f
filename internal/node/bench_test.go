package node

import (
	"fmt"
	"io"
	"net"
	"net/smtp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// smtpSession is one authenticated SMTP submission connection (loopback: no STARTTLS needed).
type smtpSession struct {
	c    *smtp.Client
	from string
}

func dialSMTP(tb testing.TB, n *Node) *smtpSession {
	tb.Helper()
	conn, err := net.Dial("tcp", n.SMTPAddr())
	if err != nil {
		tb.Fatal(err)
	}
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	// net/smtp's PlainAuth refuses an unencrypted connection; the node allows PLAIN on loopback.
	if err := c.Auth(loopbackPlain{n.Identity().Address().Mail(), n.Password()}); err != nil {
		tb.Fatal(err)
	}
	return &smtpSession{c: c, from: n.Identity().Address().Mail()}
}

// loopbackPlain is SASL PLAIN without net/smtp's TLS check (the server allows it on loopback).
type loopbackPlain struct{ user, password string }

func (a loopbackPlain) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.password), nil
}
func (a loopbackPlain) Next([]byte, bool) ([]byte, error) { return nil, nil }

func (s *smtpSession) send(tb testing.TB, to, raw string) {
	tb.Helper()
	s.sendBytes(tb, to, []byte(raw))
}

// sendBytes is send without the copy of a string conversion.
func (s *smtpSession) sendBytes(tb testing.TB, to string, raw []byte) {
	tb.Helper()
	s.sendStream(tb, to, func(w io.Writer) error {
		_, err := w.Write(raw)
		return err
	})
}

// mailOf is a mail with a body of about size bytes in 78-character lines.
func mailOf(from, to, id string, size int) string {
	line := strings.Repeat("x", 76) + "\r\n"
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: bench %s\r\nMessage-ID: <%s@bench>\r\nDate: %s\r\n\r\n%s",
		from, to, id, id, time.Now().UTC().Format(time.RFC1123Z), strings.Repeat(line, size/len(line)))
}

func benchPair(b *testing.B, params tangle.Params) (alice, bob *Node) {
	cfg := testConfig(nil, b.TempDir())
	cfg.Network = params
	a := startNode(b, cfg)
	cfg = testConfig(nil, b.TempDir())
	cfg.Network = params
	cfg.Bootstrap = a.Network().Addrs()
	bn := startNode(b, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for a.Network().PeerCount() < 1 || bn.Network().PeerCount() < 1 {
		if time.Now().After(deadline) {
			b.Fatal("nodes did not peer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a, bn
}

// BenchmarkSMTPSubmit: 4 KiB mails submitted over one SMTP connection to a whole node (outbox, inbox,
// network running) on the benchmark network, where PoW is disabled: how many submissions per second the
// node acknowledges, each 250 meaning the message is on disk.
func BenchmarkSMTPSubmit(b *testing.B) {
	alice, bob := benchPair(b, tangle.BenchNet)
	s := dialSMTP(b, alice)
	defer s.c.Close()
	to := bob.Identity().Address().Mail()
	b.SetBytes(4096)
	i := 0
	for b.Loop() {
		i++
		s.send(b, to, mailOf(s.from, to, fmt.Sprint(i), 4096))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSubmitToIdle: a 4 KiB mail from alice's SMTP port to bob's IMAP client waiting in IDLE, between
// two nodes on the devnet with real proof of work. Reports the median and p90 latency over the ops.
func BenchmarkSubmitToIdle(b *testing.B) {
	alice, bob := benchPair(b, tangle.DevNet)
	s := dialSMTP(b, alice)
	defer s.c.Close()
	to := bob.Identity().Address().Mail()
	lat := benchToIdle(b, bob, 60*time.Second, func(i int) { s.send(b, to, mailOf(s.from, to, fmt.Sprint(i), 4096)) })
	b.ReportMetric(lat[len(lat)/2].Seconds(), "median-s")
	b.ReportMetric(lat[len(lat)*9/10].Seconds(), "p90-s")
}

// benchToIdle is the loop of a benchmark of mail to bob's IMAP client waiting in IDLE on INBOX: op i
// calls send(i), which submits the i-th mail, and lasts until bob's INBOX holds i messages (failing
// after within). It returns the ops' latencies, sorted.
func benchToIdle(b *testing.B, bob *Node, within time.Duration, send func(i int)) []time.Duration {
	exists := make(chan uint32, 16)
	c, err := imapclient.DialInsecure(bob.IMAPAddr(), &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	loginSelect(b, c, bob, "INBOX")
	idle, err := c.Idle()
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		send(i)
		for {
			select {
			case n := <-exists:
				if n < uint32(i) {
					continue
				}
			case <-time.After(within):
				b.Fatalf("mail %d did not reach bob's IDLE within %v", i, within)
			}
			break
		}
		lat = append(lat, time.Since(start))
	}
	idle.Close()
	idle.Wait()
	slices.Sort(lat)
	return lat
}
