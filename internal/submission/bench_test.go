package submission

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/store"
)

// benchMessage is a 4 KiB message (4096 bytes) with a unique Message-ID, so the store never takes it
// for a resubmission.
func benchMessage(i int64) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Me <%s>\r\nTo: <%s>\r\nSubject: bench %d\r\nDate: Mon, 02 Feb 2026 10:00:00 +0000\r\n"+
		"Message-ID: <bench-%d@client.test>\r\n\r\n", own, rcpt1, i, i)
	for b.Len() < 4096-80 {
		b.WriteString(strings.Repeat("z", 76) + "\r\n")
	}
	b.WriteString(strings.Repeat("y", 4096-b.Len()-2) + "\r\n")
	return []byte(b.String())
}

// BenchmarkSubmit measures submissions through real SMTP on loopback (AUTH once per connection, then
// MAIL, RCPT, DATA of a 4 KiB message per submission) into the StoreBackend, each one committed to
// disk before its 250. conns clients submit concurrently.
func BenchmarkSubmit(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			st, err := store.Open(filepath.Join(b.TempDir(), "mail.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			_, addr := startServer(b, StoreBackend{Store: st}, testOptions(b))
			clients := make([]*smtp.Client, conns)
			for i := range clients {
				clients[i] = authedClient(b, addr)
			}
			if len(benchMessage(1)) != 4096 {
				b.Fatalf("message is %d bytes", len(benchMessage(1)))
			}
			b.SetBytes(4096)
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, conns)
			for _, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := send(b, c, own, []string{rcpt1}, benchMessage(i)); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
