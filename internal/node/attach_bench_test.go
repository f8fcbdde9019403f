package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// vmHWM is this process's peak resident set (VmHWM of /proc/self/status) in MiB; 0 if unknown.
func vmHWM() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// benchAttachment: a mail of size bytes (a base64 attachment) from alice's SMTP port to bob's IMAP
// client in IDLE, two loopback nodes with the main network's parameters (real proof of work, for the
// small envelope only), alice in bob's contacts. Reports the median latency (ms) and the peak RSS of
// the process, which runs both nodes and the clients (rss-MiB).
func benchAttachment(b *testing.B, size int) {
	alice, bob := benchPair(b, tangle.MainNet)
	if err := bob.Mailboxes().AddContact(context.Background(), "alice", alice.Identity().Address().Mail()); err != nil {
		b.Fatal(err)
	}
	s := dialSMTP(b, alice)
	defer s.c.Close()
	to := bob.Identity().Address().Mail()
	// One message, its subject's counter changed in place for every op: the store takes identical
	// bytes as a client's resubmission and would not send them again.
	raw := attachMailBytes(s.from, to, "bench 00000000", size)
	ctr := bytes.Index(raw, []byte("bench 00000000")) + len("bench ")
	lat := benchToIdle(b, bob, 120*time.Second, func(i int) {
		copy(raw[ctr:ctr+8], fmt.Sprintf("%08d", i))
		s.sendBytes(b, to, raw)
	})
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "ms")
	b.ReportMetric(vmHWM(), "rss-MiB")
}

// BenchmarkAttachment5MiB: goal ≤ 5,000 ms (issue 11).
func BenchmarkAttachment5MiB(b *testing.B) { benchAttachment(b, 5<<20) }

// BenchmarkAttachment25MiB: goal ≤ 30,000 ms, peak RSS of both nodes ≤ 150 MB (issue 11).
func BenchmarkAttachment25MiB(b *testing.B) { benchAttachment(b, 25<<20-8<<10) }
