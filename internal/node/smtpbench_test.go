package node

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// mailClient is a minimal SMTP submission client that behaves like the common mail clients (Python's
// smtplib, Thunderbird) on the wire: one write per command and one for the whole DATA body, and, when
// nagle is set, Nagle's algorithm left on (Go's net.Dial turns it off; mail clients do not).
type mailClient struct {
	conn net.Conn
	r    *bufio.Reader
	tb   testing.TB
}

func dialMailClient(tb testing.TB, addr string, nagle bool) *mailClient {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	if nagle {
		if err := conn.(*net.TCPConn).SetNoDelay(false); err != nil {
			tb.Fatal(err)
		}
	}
	c := &mailClient{conn: conn, r: bufio.NewReader(conn), tb: tb}
	c.expect(220)
	return c
}

// cmd writes line (CRLF added) in one write and reads the reply, which must have code want.
func (c *mailClient) cmd(want int, line string) {
	c.tb.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.tb.Fatal(err)
	}
	c.expect(want)
}

// expect reads one (possibly multi-line) reply and fails unless its code is want.
func (c *mailClient) expect(want int) {
	c.tb.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.tb.Fatalf("reading reply (want %d): %v", want, err)
		}
		if len(line) < 4 || line[:3] != fmt.Sprint(want) {
			c.tb.Fatalf("reply %q, want %d", strings.TrimSpace(line), want)
		}
		if line[3] == ' ' {
			return
		}
	}
}

// startTLS is EHLO, STARTTLS, the TLS handshake and EHLO again (RFC 3207 §4.2).
func (c *mailClient) startTLS() {
	c.tb.Helper()
	c.cmd(250, "EHLO client.test")
	c.cmd(220, "STARTTLS")
	// The node's certificate is self-signed; the benchmark measures the handshake, not the trust.
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		c.tb.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmd(250, "EHLO client.test")
}

func (c *mailClient) auth(user, password string) {
	c.tb.Helper()
	c.cmd(235, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)))
}

// send submits raw (CRLF lines, no line starting with a dot) with its body in one write; the 250
// means the message is on disk.
func (c *mailClient) send(from, to, raw string) {
	c.tb.Helper()
	c.cmd(250, "MAIL FROM:<"+from+">")
	c.cmd(250, "RCPT TO:<"+to+">")
	c.cmd(354, "DATA")
	c.cmd(250, raw+".")
}

func (c *mailClient) quit() {
	c.tb.Helper()
	c.cmd(221, "QUIT")
	c.conn.Close()
}

// smtpBenchNets are the networks of the submission benchmarks: the benchmark network (proof of work
// off) and the devnet, where the node grinds real proof of work for its earlier mail while the
// submissions run.
var smtpBenchNets = []struct {
	name   string
	params tangle.Params
}{
	{"pow=off", tangle.BenchNet},
	{"pow=real", tangle.DevNet},
}

// BenchmarkSMTPSubmitConn: one 4 KiB mail per connection to a whole node, each time connect, EHLO,
// STARTTLS, EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT, from a client that leaves Nagle's algorithm on
// as mail clients do. Reports acknowledged mails per second.
func BenchmarkSMTPSubmitConn(b *testing.B) {
	for _, nw := range smtpBenchNets {
		b.Run(nw.name, func(b *testing.B) {
			alice, bob := benchPair(b, nw.params)
			from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
			b.SetBytes(4096)
			i := 0
			for b.Loop() {
				i++
				c := dialMailClient(b, alice.SMTPAddr(), true)
				c.startTLS()
				c.auth(from, alice.Password())
				c.send(from, to, mailOf(from, to, fmt.Sprint(i), 4096))
				c.quit()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkSMTPSubmitKept: 4 KiB mails over one kept connection (STARTTLS and AUTH once) to a whole
// node, from a client that leaves Nagle's algorithm on. Reports acknowledged mails per second.
func BenchmarkSMTPSubmitKept(b *testing.B) {
	for _, nw := range smtpBenchNets {
		b.Run(nw.name, func(b *testing.B) {
			alice, bob := benchPair(b, nw.params)
			from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
			c := dialMailClient(b, alice.SMTPAddr(), true)
			c.startTLS()
			c.auth(from, alice.Password())
			b.SetBytes(4096)
			i := 0
			for b.Loop() {
				i++
				c.send(from, to, mailOf(from, to, fmt.Sprint(i), 4096))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			c.quit()
		})
	}
}

// BenchmarkSMTPSessionPhases: the wall time of each phase of a STARTTLS submission connection with no
// mail (connect and greeting, EHLO, STARTTLS, the TLS handshake, EHLO after TLS, AUTH, QUIT) from a
// Nagle-on client, as ms/op per phase: where a stall of delayed ACKs would show.
func BenchmarkSMTPSessionPhases(b *testing.B) {
	alice, _ := benchPair(b, tangle.BenchNet)
	from := alice.Identity().Address().Mail()
	phases := []string{"connect", "ehlo", "starttls", "handshake", "ehlo-tls", "auth", "quit"}
	sum := make([]time.Duration, len(phases))
	for b.Loop() {
		t := time.Now()
		lap := func(i int) { now := time.Now(); sum[i] += now.Sub(t); t = now }
		c := dialMailClient(b, alice.SMTPAddr(), true)
		lap(0)
		c.cmd(250, "EHLO client.test")
		lap(1)
		c.cmd(220, "STARTTLS")
		lap(2)
		tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err := tc.Handshake(); err != nil {
			b.Fatal(err)
		}
		c.conn, c.r = tc, bufio.NewReader(tc)
		lap(3)
		c.cmd(250, "EHLO client.test")
		lap(4)
		c.auth(from, alice.Password())
		lap(5)
		c.quit()
		lap(6)
	}
	for i, p := range phases {
		b.ReportMetric(float64(sum[i].Microseconds())/1000/float64(b.N), p+"-ms")
	}
}
