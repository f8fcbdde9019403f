// Package smtptest is test support: submitting a message to a node's SMTP submission port the way a
// mail client that has accepted the node's self-signed certificate does (STARTTLS trusting that
// certificate, AUTH PLAIN, MAIL FROM the user's address). Tests use it to set up mail, not as the client
// under test. Only tests import it.
package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"net/smtp"
	"os"
	"testing"
)

// Submit sends raw from user to rcpts through the submission port at addr, trusting the PEM
// certificate in certFile and authenticating as user with password. Any step that fails fails t,
// naming the step.
func Submit(t testing.TB, addr, certFile, user, password string, rcpts []string, raw string) {
	t.Helper()
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in " + certFile)
	}
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	steps := []func() error{
		func() error { return c.StartTLS(&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}) },
		func() error { return c.Auth(smtp.PlainAuth("", user, password, "127.0.0.1")) },
		func() error { return c.Mail(user) },
	}
	for _, r := range rcpts {
		steps = append(steps, func() error { return c.Rcpt(r) })
	}
	steps = append(steps, func() error {
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write([]byte(raw)); err != nil {
			return err
		}
		return w.Close()
	}, c.Quit)
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("SMTP submission as %s, step %d: %v", user, i, err)
		}
	}
}
