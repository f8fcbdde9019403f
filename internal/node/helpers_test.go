package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// dialStorage connects a fresh client host to the storage provider at addr and opens a session on
// network netID. Host and session are closed when the test ends.
func dialStorage(t *testing.T, ctx context.Context, addr string, netID tangle.NetworkID) (*p2p.ClientHost, peer.ID, *wire.Session) {
	t.Helper()
	h, err := p2p.NewClientHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	pid, err := h.ConnectAddr(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := wire.Dial(ctx, h, pid, netID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return h, pid, sess
}

// subscribe creates a subscription with a fresh key on sess (req.Key is set here), checks that it is in
// state want, and authenticates the session as it.
func subscribe(t *testing.T, ctx context.Context, sess *wire.Session, req wire.CreateRequest, want wire.SubState) wire.SubID {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	req.Key = pub
	id, state, err := sess.Create(ctx, req)
	if err != nil || state != want {
		t.Fatalf("create: %v %v, want %v", state, err, want)
	}
	if err := sess.Auth(ctx, id, priv); err != nil {
		t.Fatal(err)
	}
	return id
}

// evmRail is a payment rail on the chain at url paying from key, with its own ledger; both are closed
// when the test ends.
func evmRail(t *testing.T, ctx context.Context, chainID uint64, key *ecdsa.PrivateKey, url string) *payment.EVM {
	t.Helper()
	led, err := payment.OpenLedger(filepath.Join(t.TempDir(), PaymentFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	rail, err := payment.DialEVM(ctx, payment.EVMConfig{ChainID: chainID, Key: key, Ledger: led}, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rail.Close() })
	return rail
}

// sendPastTTL has alice send bob, whose device is off, mails mails (subject "<prefix> mail NN",
// Message-ID <prefix-N@tangle>) and chats chat messages (chatFormat with the number), and waits until
// every one has passed its TTL at alice's outbox (delayed or failed): from then on only a storage node
// has them. It returns the chat conversation's id.
func sendPastTTL(t *testing.T, alice *Node, bobAddr, prefix string, mails, chats int, chatFormat string) string {
	t.Helper()
	ctx := context.Background()
	aliceAddr := alice.Identity().Address().Mail()
	for i := range mails {
		submit(t, alice, []string{bobAddr}, fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s mail %02d\r\n"+
			"Message-ID: <%s-%d@tangle>\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\n\r\nmail %d while bob was away\r\n",
			aliceAddr, bobAddr, prefix, i, prefix, i, i))
	}
	conv, err := alice.Chat().Direct(ctx, bobAddr)
	if err != nil {
		t.Fatal(err)
	}
	for i := range chats {
		if _, err := alice.Chat().Send(ctx, conv.ID, fmt.Sprintf(chatFormat, i)); err != nil {
			t.Fatal(err)
		}
	}
	// Delay notices are filed at the TTL, and the outbox waits out the grace period for a late receipt
	// (protocol.md §10.2, sender rule 3).
	waitFor(t, "every message of alice's to pass its TTL", 5*time.Minute, func() bool {
		st := alice.outbox.Stats()
		return st.Delayed+st.Failed >= uint64(mails+chats)
	})
	return conv.ID
}

// waitDelivered waits until mails Sent copies of sender carry $Delivered (their receipts arrived),
// read over IMAP as a mail client sees them.
func waitDelivered(t *testing.T, sender *Node, mails int) {
	t.Helper()
	waitFor(t, "the sender's Sent copies to be $Delivered", 2*time.Minute, func() bool {
		_, flags := imapSubjects(t, sender, "Sent")
		done := 0
		for _, f := range flags {
			if slices.Contains(f, imap.Flag(store.DeliveredKeyword)) {
				done++
			}
		}
		return done == mails
	})
}
