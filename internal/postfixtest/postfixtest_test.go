package postfixtest

import (
	"bytes"
	"net/smtp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/testwait"
)

// Both kinds of instance the tests run, one relaying to the other: the sender routes example.test by
// transport_maps (a file in its configuration directory) to the MX, which offers STARTTLS and files the
// mail in its Maildir; the Received field the MX adds names the sender's EHLO and the TLS (ESMTPS, or
// UTF8SMTPS: Go's net/smtp asks for SMTPUTF8 when offered).
func TestPostfixRelayToPostfix(t *testing.T) {
	mx := Start(t, Config{Hostname: "mx.example.test", TLS: true, Deliver: "example.test"})
	sender := Start(t, Config{
		Hostname: "mta.sender.test",
		Main: `smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = texthash:$config_directory/transport
smtp_tls_security_level = may`,
		Files: map[string]string{"transport": "example.test smtp:[127.0.0.1]:" + strconv.Itoa(mx.Port) + "\n* discard:\n"},
	})
	msg := "From: <bob@sender.test>\r\nTo: <carol@example.test>\r\nSubject: relay\r\n\r\npostfixtest-marker-93e1\r\n"
	if err := smtp.SendMail(sender.Addr, nil, "bob@sender.test", []string{"carol@example.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the mail in the MX's Maildir", 60*time.Second, func() bool { return len(mx.Maildir(t)) == 1 })
	got := mx.Maildir(t)[0]
	for _, want := range []string{"postfixtest-marker-93e1", "Received: from mta.sender.test", "(using TLS", "SMTPS id"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("the delivered mail lacks %q:\n%s", want, got)
		}
	}
	if l := sender.Log(); !strings.Contains(l, "status=sent") {
		t.Errorf("the sender's log has no delivery:\n%s", l)
	}
}
