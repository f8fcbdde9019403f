//go:build unix

package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// BenchmarkGatewayInbound: 4 KiB Internet mails over one kept STARTTLS connection to a gateway node's MX,
// each checked (SPF, DKIM none, DMARC), sealed in memory, committed (250) and then ground and published
// by the outbox: msgs/s counts from the first MAIL to the last block published (sealed, queued blocks on
// the Tangle); ack-msgs/s only up to the last 250. cpu-s/msg is the process's CPU time (user + system)
// per mail over the same span. The claimant is an identity with no running node and the gateway's one
// peer a bystander, so the figures are the gateway's own work (plus the bystander's validation).
func BenchmarkGatewayInbound(b *testing.B) {
	for _, p := range []tangle.Params{tangle.BenchNet, tangle.MainNet} {
		b.Run("net="+p.Name, func(b *testing.B) { benchGatewayInbound(b, p, 4096) })
	}
}

// BenchmarkGatewayInboundLarge is BenchmarkGatewayInbound with 2 MiB mails on the main network's
// parameters: each is sealed into a blob the gateway serves and one blob mail envelope per mail pays
// proof of work (before, the mail went out as 65 envelopes, each ground).
func BenchmarkGatewayInboundLarge(b *testing.B) {
	b.Run("net="+tangle.MainNet.Name, func(b *testing.B) { benchGatewayInbound(b, tangle.MainNet, 2<<20) })
}

func benchGatewayInbound(b *testing.B, params tangle.Params, size int) {
	dns := dnstest.Start(b, `sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`, `_dmarc.sender.test. TXT "v=DMARC1; p=none"`)
	gcfg := gatewayConfig(b, dns)
	gcfg.Network = params
	gcfg.Gateway.MsgsPerIPMinute = 1 << 30
	gw := startNode(b, gcfg)
	pcfg := testConfig(b, b.TempDir())
	pcfg.Network = params
	pcfg.Bootstrap = gw.Network().Addrs()
	startNode(b, pcfg)
	testwait.For(b, "peering", 10*time.Second, func() bool { return gw.Network().PeerCount() == 1 })
	user, err := identity.Generate(8)
	if err != nil {
		b.Fatal(err)
	}
	claimAddress(b, gw, user, "user")
	c, err := smtp.DialStartTLS(gw.GatewayMXAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mta.sender.test"); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte(fmt.Sprintf("%076d\r\n", 0)), size/78)
	cpu0 := cpuTime()
	start := time.Now()
	i := 0
	for b.Loop() {
		i++
		msg := fmt.Appendf(nil, "From: <bob@sender.test>\r\nTo: <user@gw.test>\r\nSubject: bench %d\r\nMessage-ID: <%d@sender.test>\r\n\r\n%s", i, i, body)
		if err := c.SendMail("bob@sender.test", []string{"user@gw.test"}, bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
	acked := time.Since(start)
	b.StopTimer()
	testwait.For(b, "every mail published", 30*time.Minute, func() bool {
		items, err := gw.Mailboxes().OutboxItems(context.Background())
		if err != nil {
			return false
		}
		for _, it := range items {
			for _, r := range it.Rcpts {
				if r.State == store.RcptPending || r.State == store.RcptSealed {
					return false
				}
			}
		}
		return len(items) == i
	})
	all := time.Since(start)
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(i)/all.Seconds(), "msgs/s")
	b.ReportMetric(float64(i)/acked.Seconds(), "ack-msgs/s")
	b.ReportMetric(cpu.Seconds()/float64(i), "cpu-s/msg")
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
