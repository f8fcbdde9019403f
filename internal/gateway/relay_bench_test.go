package gateway

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// BenchmarkGatewayOutbound: relay requests from a claimed sender, from Submit (parse, claim check,
// From rewrite, DKIM signature, durable queue) to delivery on a loopback MX with STARTTLS (one SMTP
// session per message), reported as msgs/s; submit-ms/msg is the time to the acknowledgment alone.
func BenchmarkGatewayOutbound(b *testing.B) {
	f := newRelayFixture(b, func(c *RelayConfig) { c.PerHour = 1 << 30 })
	ctx := context.Background()
	f.run()
	body := make([]byte, 4<<10)
	for i := range body {
		body[i] = 'a' + byte(i%26)
		if i%76 == 75 {
			body[i] = '\n'
		}
	}
	b.ResetTimer()
	start := time.Now()
	var submit time.Duration
	for i := range b.N {
		msg := "From: <" + f.alice.Address().Mail() + ">\r\nTo: <bob@example.test>\r\nSubject: bench " + strconv.Itoa(i) +
			"\r\nMessage-ID: <" + strconv.Itoa(i) + "@bench>\r\n\r\n" + string(body) + "\r\n"
		raw, err := mail.EncodeRelay([]string{"bob@example.test"}, []byte(msg))
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := f.r.Submit(ctx, f.alice.Address(), raw); err != nil {
			b.Fatal(err)
		}
		submit += time.Since(t0)
	}
	testwait.For(b, "every message delivered", 10*time.Minute, func() bool { return len(f.mx.Mails()) == b.N })
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(submit.Milliseconds())/float64(b.N), "submit-ms/msg")
}
