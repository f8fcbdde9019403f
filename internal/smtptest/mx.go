package smtptest

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/selfsigned"
)

// MX is an Internet MX on loopback for tests of outbound delivery: STARTTLS with a self-signed
// certificate, and every message it accepts recorded. Set RcptErr (under no lock: before mail is sent)
// to answer every RCPT with it.
type MX struct {
	Port int

	mu      sync.Mutex
	got     []Mail
	RcptErr *smtp.SMTPError
}

// Mail is one accepted message: envelope, whether STARTTLS was on, and the bytes after DATA.
type Mail struct {
	From, Rcpt string
	TLS        bool
	Data       []byte
}

// StartMX runs an MX on 127.0.0.1:port (0: any free port) until t ends.
func StartMX(t testing.TB, port int) *MX {
	t.Helper()
	m := &MX{}
	cert, err := selfsigned.New(selfsigned.Names{DNS: []string{"mx.example.test"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &mxSession{m: m, c: c}, nil }))
	s.Domain = "mx.example.test"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	m.Port = ln.Addr().(*net.TCPAddr).Port
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return m
}

// Mails returns what the MX accepted so far.
func (m *MX) Mails() []Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Mail(nil), m.got...)
}

type mxSession struct {
	m        *MX
	c        *smtp.Conn
	from, to string
}

func (s *mxSession) Reset()        {}
func (s *mxSession) Logout() error { return nil }

func (s *mxSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *mxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.m.RcptErr != nil {
		return s.m.RcptErr
	}
	s.to = to
	return nil
}

func (s *mxSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, tlsOn := s.c.TLSConnectionState()
	s.m.mu.Lock()
	s.m.got = append(s.m.got, Mail{From: s.from, Rcpt: s.to, TLS: tlsOn, Data: b})
	s.m.mu.Unlock()
	return nil
}
