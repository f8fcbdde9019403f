package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
)

// Run delivers queued mail until ctx is done: due recipients one after another, then it sleeps until
// the next is due or Notify. A recipient is delivered (2xx after DATA), fails (5xx, or MaxAge reached)
// or is retried after MinRetry·2^attempts, at most MaxRetry; delivery and failure are reported to the
// sender (report) before the recipient leaves the queue, so a crash in between reports twice, never
// not at all. A delivery notice that cannot be queued is logged and dropped (the mail is never sent
// twice for it); a bounce that cannot be queued keeps the recipient queued until it can.
func (r *Relay) Run(ctx context.Context) error {
	for {
		jobs, next, err := r.q.due(ctx, r.g.now(), 16)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.log.Error("gateway: relay queue", "err", err)
			next = r.g.now().Add(r.cfg.MinRetry)
		}
		for _, j := range jobs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := r.attempt(ctx, j); err != nil && ctx.Err() == nil {
				r.log.Error("gateway: relay", "err", err)
			}
		}
		if len(jobs) > 0 && err == nil {
			continue
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(r.g.now()), 10*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliveryError is the outcome of an attempt that did not deliver.
type deliveryError struct {
	permanent bool
	status    string // RFC 3463, e.g. "5.1.1"
	text      string // for the DSN: the remote reply or what went wrong, no local secrets
}

func (e *deliveryError) Error() string { return e.status + " " + e.text }

func (r *Relay) attempt(ctx context.Context, j relayJob) error {
	now := r.g.now()
	derr := r.deliver(ctx, j)
	if derr == nil {
		if r.cfg.DeliveredReports {
			// The mail is delivered: a lost notice must not make the gateway send it again.
			if err := r.report(ctx, j.sender, j.body, j.rcpt, mail.Reason{Status: "2.0.0", Text: "delivered"}, true, now); err != nil {
				r.log.Error("gateway: relay delivered, but the delivery notice was not queued", "err", err)
			}
		}
		r.mu.Lock()
		r.delivered++
		r.mu.Unlock()
		r.log.Info("gateway: relay delivered", "attempts", j.attempts+1)
		return r.q.done(ctx, j)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !derr.permanent && now.Sub(j.created) >= r.cfg.MaxAge {
		derr = &deliveryError{permanent: true, status: "4.4.7",
			text: fmt.Sprintf("not delivered within %s; last error: %s", r.cfg.MaxAge, derr.text)}
	}
	if derr.permanent {
		status := derr.status
		if strings.HasPrefix(status, "4") { // expiry: RFC 3464 failed reports carry a 5.x.y status
			status = "5" + status[1:]
		}
		if err := r.report(ctx, j.sender, j.body, j.rcpt, mail.Reason{Status: status, Text: derr.text}, false, now); err != nil {
			// The bounce must reach the sender: try the whole attempt again later.
			return errors.Join(err, r.q.retry(ctx, j, now.Add(r.cfg.MaxRetry), derr.text))
		}
		r.mu.Lock()
		r.failed++
		r.mu.Unlock()
		r.log.Info("gateway: relay failed", "status", derr.status, "attempts", j.attempts+1)
		r.log.Debug("gateway: relay failed", "rcpt", j.rcpt, "reason", derr.text)
		return r.q.done(ctx, j)
	}
	delay := r.cfg.MinRetry << min(j.attempts, 20)
	if delay <= 0 || delay > r.cfg.MaxRetry {
		delay = r.cfg.MaxRetry
	}
	r.mu.Lock()
	r.retried++
	r.mu.Unlock()
	r.log.Info("gateway: relay deferred", "status", derr.status, "attempts", j.attempts+1, "retry_in", delay)
	r.log.Debug("gateway: relay deferred", "rcpt", j.rcpt, "reason", derr.text)
	return r.q.retry(ctx, j, now.Add(delay), derr.text)
}

// deliver sends j's message to j's recipient through the MX hosts of its domain (RFC 5321 §5.1).
func (r *Relay) deliver(ctx context.Context, j relayJob) *deliveryError {
	_, domain, _ := strings.Cut(j.rcpt, "@")
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	mxs, err := r.cfg.Resolver.LookupMX(lctx, domain)
	cancel()
	var hosts []string
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(mxs) > 0:
		slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
		for _, mx := range mxs {
			h := strings.TrimSuffix(mx.Host, ".")
			if h == "" { // RFC 7505: a null MX, the domain takes no mail
				return &deliveryError{permanent: true, status: "5.1.10", text: "the recipient's domain accepts no mail (null MX)"}
			}
			hosts = append(hosts, h)
		}
	case err == nil || (errors.As(err, &dnsErr) && dnsErr.IsNotFound):
		hosts = []string{domain} // §5.1: no MX, the domain itself is the host
	default:
		return &deliveryError{status: "4.4.3", text: "MX lookup for " + domain + " failed"}
	}
	last := &deliveryError{status: "4.4.1", text: "no MX host of " + domain + " could be reached"}
	for _, h := range hosts {
		e, tryNext := r.deliverTo(ctx, h, j)
		if e == nil {
			return nil
		}
		last = e
		if !tryNext {
			break
		}
	}
	return last
}

// deliverTo tries the addresses of host; tryNext says whether another MX host may do better (the
// connection failed, or a 4xx before the transaction got anywhere).
func (r *Relay) deliverTo(ctx context.Context, host string, j relayJob) (_ *deliveryError, tryNext bool) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	addrs, err := r.cfg.Resolver.LookupIPAddr(lctx, host)
	cancel()
	if err != nil || len(addrs) == 0 {
		return &deliveryError{status: "4.4.4", text: "no address for MX host " + host}, true
	}
	var last *deliveryError
	for _, a := range addrs {
		d := net.Dialer{Timeout: min(r.cfg.Timeout, 30*time.Second)}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.IP.String(), strconv.Itoa(r.cfg.Port)))
		if err != nil {
			last = &deliveryError{status: "4.4.1", text: "connection to " + host + " failed"}
			continue
		}
		e := r.transaction(conn, host, j, true)
		if e == errNoStartTLS { // RFC 3207 is optional: send in the clear rather than not at all
			if conn, err = d.DialContext(ctx, "tcp", net.JoinHostPort(a.IP.String(), strconv.Itoa(r.cfg.Port))); err != nil {
				last = &deliveryError{status: "4.4.1", text: "connection to " + host + " failed"}
				continue
			}
			e = r.transaction(conn, host, j, false)
		}
		if e == nil || e.permanent {
			return e, false
		}
		last = e
	}
	return last, true
}

var errNoStartTLS = &deliveryError{status: "4.7.5", text: "no STARTTLS"}

// transaction runs one SMTP transaction on conn: EHLO, STARTTLS (RFC 3207; opportunistic, RFC 7435
// §3: the certificate is not checked, as most MTAs do; errNoStartTLS when not offered and tryTLS),
// MAIL, RCPT, DATA. go-smtp's STARTTLS path greets with "localhost" before TLS; the EHLO after it, the
// one the session runs under, names the gateway.
func (r *Relay) transaction(conn net.Conn, host string, j relayJob, tryTLS bool) *deliveryError {
	var c *smtp.Client
	if tryTLS {
		var err error
		conn.SetDeadline(time.Now().Add(r.cfg.Timeout))
		c, err = smtp.NewClientStartTLS(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
		conn.SetDeadline(time.Time{})
		if err != nil {
			conn.Close()
			if strings.Contains(err.Error(), "doesn't support STARTTLS") {
				return errNoStartTLS
			}
			return smtpFailure(err, host, "STARTTLS")
		}
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = r.cfg.Timeout
	c.SubmissionTimeout = 2 * r.cfg.Timeout
	defer c.Close()
	if err := c.Hello(r.g.cfg.Hostname); err != nil {
		return smtpFailure(err, host, "EHLO")
	}
	opts := &smtp.MailOptions{}
	if ok, _ := c.Extension("8BITMIME"); ok {
		opts.Body = smtp.Body8BitMIME
	}
	if err := c.Mail(j.mailFrom, opts); err != nil {
		return smtpFailure(err, host, "MAIL FROM")
	}
	if err := c.Rcpt(j.rcpt, nil); err != nil {
		return smtpFailure(err, host, "RCPT TO")
	}
	w, err := c.Data()
	if err != nil {
		return smtpFailure(err, host, "DATA")
	}
	if _, err := w.Write(j.body); err != nil {
		return smtpFailure(err, host, "DATA")
	}
	if err := w.Close(); err != nil {
		return smtpFailure(err, host, "end of DATA")
	}
	_ = c.Quit()
	return nil
}

// smtpFailure turns a client error into a delivery error: a 5xx reply is permanent, anything else
// temporary. The remote reply goes into the DSN (RFC 3464 §2.3.6 diagnostic), in one line.
func smtpFailure(err error, host, step string) *deliveryError {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		status := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		if se.EnhancedCode[0] == 0 {
			status = fmt.Sprintf("%d.0.0", se.Code/100)
		}
		text := fmt.Sprintf("%s answered %s with %d %s", host, step, se.Code, strings.Join(strings.Fields(se.Message), " "))
		return &deliveryError{permanent: se.Code >= 500 && se.Code < 600, status: status, text: text}
	}
	return &deliveryError{status: "4.4.2", text: "the connection to " + host + " broke during " + step}
}

// report sends the sender a delivery status notification sealed by the gateway (Config.Queue): Action
// delivered or failed (RFC 3464 §2.3.3) for rcpt, quoting msg's header.
func (r *Relay) report(ctx context.Context, to identity.Address, msg []byte, rcpt string, reason mail.Reason, delivered bool, now time.Time) error {
	pm := "postmaster@" + r.g.claims.Domains()[0]
	var dsn []byte
	if delivered {
		dsn = deliveredReport(msg, rcpt, now, pm)
	} else {
		dsn = mail.Bounce(msg, rcpt, reason, now, pm)
	}
	if _, err := r.g.cfg.Queue(ctx, []identity.Address{to}, dsn); err != nil {
		return fmt.Errorf("gateway: queueing a delivery report: %w", err)
	}
	return nil
}
