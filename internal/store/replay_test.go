package store

import (
	"sync"
	"testing"
	"time"
)

func TestDeliverOnceUnderConcurrentAttempts(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	key := ReplayKey{0xAA, 1}
	expires := time.Now().Add(96 * time.Hour)
	raw := rawMsg("once", "filed exactly once")

	const attempts = 8
	var wg sync.WaitGroup
	results := make(chan bool, attempts)
	errs := make(chan error, attempts)
	start := make(chan struct{})
	for i := 0; i < attempts; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, delivered, err := s.DeliverOnce(ctx, key, expires, NewMessage{MailboxID: inbox.ID, Raw: raw,
				Meta: Meta{ViaTangle: true, SenderVerified: "tm1x"}})
			if err != nil {
				errs <- err
				return
			}
			results <- delivered
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := 0
	for d := range results {
		if d {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d of %d attempts delivered, want exactly 1", n, attempts)
	}
	if m := mustMailbox(t, s, "INBOX"); m.Messages != 1 {
		t.Errorf("INBOX has %d messages", m.Messages)
	}
	if seen, _ := s.SeenReplayKey(ctx, key); !seen {
		t.Errorf("key not recorded")
	}

	// A failed delivery does not burn the key.
	other := ReplayKey{0xBB}
	if _, _, err := s.DeliverOnce(ctx, other, expires, NewMessage{MailboxID: 424242, Raw: raw}); err == nil {
		t.Fatal("delivery to a missing mailbox succeeded")
	}
	if seen, _ := s.SeenReplayKey(ctx, other); seen {
		t.Errorf("key of a failed delivery recorded")
	}
	if _, ok, err := s.DeliverOnce(ctx, other, expires, NewMessage{MailboxID: inbox.ID, Raw: rawMsg("b", "b")}); !ok || err != nil {
		t.Errorf("retry after failure: %v, %v", ok, err)
	}
}

func TestPruneReplayKeys(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	now := time.Now()
	s.Update(ctx, func(tx *Tx) error {
		tx.ClaimReplayKey(ReplayKey{1}, now.Add(-time.Hour))
		tx.ClaimReplayKey(ReplayKey{2}, now.Add(time.Hour))
		return nil
	})
	if n, err := s.PruneReplayKeys(ctx, now); err != nil || n != 1 {
		t.Errorf("PruneReplayKeys = %d, %v", n, err)
	}
	if seen, _ := s.SeenReplayKey(ctx, ReplayKey{2}); !seen {
		t.Errorf("unexpired key pruned")
	}
}
