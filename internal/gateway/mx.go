package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// MX replies (RFC 5321 §4.2, enhanced status codes RFC 3463).
var (
	errUnknownUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "No such user here"}
	errTooLarge = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message too big for system"}
	errDMARCReject = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Rejected by the sender domain's DMARC policy"}
	errRate = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many messages from your address, try again later"}
	errNotQueued = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Message not queued, please try again later"}
	errLookup = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary lookup failure, please try again later"}
	errNoRcpt = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message: "No valid recipients"}
	errBadSender = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
		Message: "Bad sender address syntax"}
)

// session is one SMTP transaction's state (go-smtp calls its methods from the connection's goroutine).
type session struct {
	g      *Gateway
	conn   *smtp.Conn
	ip     net.IP
	from   string
	rcpts  []identity.Address
	forDbg []string // the envelope recipients, for debug logs
}

func (g *Gateway) newSession(c *smtp.Conn) (smtp.Session, error) {
	ip := net.ParseIP(hostOf(c.Conn().RemoteAddr()))
	return &session{g: g, conn: c, ip: ip}, nil
}

func (s *session) Reset() {
	s.from, s.rcpts, s.forDbg = "", nil, nil
}

func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if !s.g.limits.message(s.ip.String()) {
		s.g.log.Info("gateway: message rate limit reached")
		s.g.log.Debug("gateway: message rate limit reached", "ip", s.ip.String())
		return errRate
	}
	if opts != nil && opts.Size > s.g.cfg.MaxMessageBytes {
		return errTooLarge
	}
	if from != "" && !strings.Contains(from, "@") {
		return errBadSender
	}
	s.Reset()
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, ok, err := s.g.claims.Lookup(ctx, to)
	if err != nil {
		s.g.log.Error("gateway: claim lookup failed", "err", err)
		return errLookup
	}
	if !ok {
		s.g.log.Debug("gateway: unknown recipient", "rcpt", to)
		return errUnknownUser
	}
	s.rcpts = append(s.rcpts, a)
	s.forDbg = append(s.forDbg, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	if len(s.rcpts) == 0 {
		io.Copy(io.Discard, r)
		return errNoRcpt
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			return errTooLarge
		}
		return err
	}
	msg := buf.Bytes()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := Authenticate(ctx, s.g.cfg.Resolver, s.ip, s.conn.Hostname(), s.from, msg)
	if res.Reject {
		s.g.mu.Lock()
		s.g.refused++
		s.g.mu.Unlock()
		s.g.log.Info("gateway: refused by DMARC policy", "spf", res.SPF, "dmarc", res.DMARC)
		s.g.log.Debug("gateway: refused by DMARC policy", "from_domain", res.FromDomain, "ip", s.ip.String())
		return errDMARCReject
	}
	var qid [8]byte
	rand.Read(qid[:])
	id := hex.EncodeToString(qid[:])
	proto := "ESMTP"
	if _, ok := s.conn.TLSConnectionState(); ok {
		proto = "ESMTPS"
	}
	// RFC 5321 §4.4: the trace field; RFC 8601 §5: Authentication-Results above it, nearest the top.
	received := fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s (tanglemail gateway) with %s id %s;\r\n\t%s\r\n",
		sanitizeHelo(s.conn.Hostname()), s.ip.String(), s.g.cfg.Hostname, proto, id, s.g.now().Format(time.RFC1123Z))
	full := make([]byte, 0, len(msg)+512)
	full = append(full, res.Field(s.g.cfg.Hostname)...)
	full = append(full, received...)
	full = append(full, msg...)
	oid, err := s.g.cfg.Queue(ctx, s.rcpts, full)
	clear(full) // best effort: the plaintext does not outlive the session longer than needed
	clear(msg)
	if err != nil {
		s.g.log.Error("gateway: queueing the sealed mail failed", "err", err)
		return errNotQueued
	}
	s.g.mu.Lock()
	s.g.accepted++
	s.g.mu.Unlock()
	s.g.log.Info("gateway: accepted", "id", id, "outbox", oid, "recipients", len(s.rcpts),
		"spf", res.SPF, "dmarc", res.DMARC, "bytes", len(msg))
	s.g.log.Debug("gateway: accepted", "id", id, "rcpts", s.forDbg, "from", s.from)
	return nil
}

// sanitizeHelo keeps a HELO name printable in a header field.
func sanitizeHelo(h string) string {
	if h == "" {
		return "unknown"
	}
	b := []byte(h)
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == ';' {
			b[i] = '_'
		}
	}
	if len(b) > 255 {
		b = b[:255]
	}
	return string(b)
}
