package mail

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/protocoldoc"
)

var (
	relayVectorRcpts = []string{"bob@example.test", "Carol@example.org"}
	relayVectorMsg   = []byte("From: <alice@gw.test>\r\nSubject: hi\r\n\r\nhello\r\n")
)

func TestProtocolVectorsRelay(t *testing.T) {
	enc, err := EncodeRelay(relayVectorRcpts, relayVectorMsg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"recipients": strings.Join(relayVectorRcpts, ","),
		"message":    hex.EncodeToString(relayVectorMsg),
		"relay":      hex.EncodeToString(enc),
	}
	protocoldoc.Check(t, protocoldoc.Path, "### 15.5 Relay test vector", want)
	rcpts, msg, err := ParseRelay(enc)
	if err != nil || strings.Join(rcpts, ",") != want["recipients"] || !bytes.Equal(msg, relayVectorMsg) {
		t.Fatalf("ParseRelay = %v, %q, %v", rcpts, msg, err)
	}
	if !IsRelay(enc) || IsRelay(relayVectorMsg) {
		t.Fatal("IsRelay")
	}
	// The relay message survives the mail path's Bcc removal.
	if !bytes.Equal(StripBcc(enc), enc) {
		t.Fatal("StripBcc changed a relay message")
	}
}

func TestParseRelayRejects(t *testing.T) {
	for _, raw := range []string{
		"",
		"Subject: x\r\n\r\nbody",
		"Tanglemail-Relay: 2\r\nTanglemail-Relay-To: a@b.c\r\n\r\nx",
		"Tanglemail-Relay: 1\r\n\r\nbody",
		"Tanglemail-Relay: 1\r\nTanglemail-Relay-To: a@b.c\r\n",
		"Tanglemail-Relay: 1\r\nTanglemail-Relay-To: <a@b.c>\r\n\r\nx",
		"Tanglemail-Relay: 1\r\nTanglemail-Relay-To: abc@tangle\r\n\r\nx",
		"Tanglemail-Relay: 1\r\nTanglemail-Relay-To: a@localhost\r\n\r\nx",
		"Tanglemail-Relay: 1\r\nTanglemail-Relay-To: a b@c.d\r\n\r\nx",
		"Tanglemail-Relay: 1\r\nTanglemail-Relay-To: a@c.d",
	} {
		if _, _, err := ParseRelay([]byte(raw)); !errors.Is(err, ErrRelayMalformed) {
			t.Errorf("ParseRelay(%q) = %v, want ErrRelayMalformed", raw, err)
		}
	}
	many := make([]string, MaxRelayRecipients+1)
	for i := range many {
		many[i] = strings.Repeat("a", i+1) + "@b.test"
	}
	if _, err := EncodeRelay(many, []byte("x")); err == nil {
		t.Error("EncodeRelay accepted too many recipients")
	}
	raw := []byte(RelayField + ": 1\r\n")
	for _, r := range many {
		raw = append(raw, RelayToField+": "+r+"\r\n"...)
	}
	raw = append(raw, "\r\nx"...)
	if _, _, err := ParseRelay(raw); !errors.Is(err, ErrRelayMalformed) {
		t.Errorf("ParseRelay accepted %d recipients", len(many))
	}
}

func FuzzParseRelay(f *testing.F) {
	good, _ := EncodeRelay(relayVectorRcpts, relayVectorMsg)
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte("Tanglemail-Relay: 1\nTanglemail-Relay-To: x@y.z\n\nm"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rcpts, msg, err := ParseRelay(b)
		if err != nil {
			if !errors.Is(err, ErrRelayMalformed) {
				t.Fatalf("error %v does not wrap ErrRelayMalformed", err)
			}
			return
		}
		if len(rcpts) == 0 || len(msg) == 0 {
			t.Fatal("accepted without recipients or message")
		}
		enc, err := EncodeRelay(rcpts, msg)
		if err != nil {
			t.Fatalf("re-encoding %v: %v", rcpts, err)
		}
		r2, m2, err := ParseRelay(enc)
		if err != nil || strings.Join(r2, ",") != strings.Join(rcpts, ",") || !bytes.Equal(m2, msg) {
			t.Fatalf("round trip: %v %v", r2, err)
		}
	})
}
