package node

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/gateway"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/store"
)

// The gateway's outbound side (protocol.md §15.4). A user's relay message reaches the gateway node
// like any mail: its inbox files it in INBOX (durably, then receipts it). The relay intake here takes
// every relay message filed there from the Tangle, hands it to the gateway's relay (which queues it in
// relay.db, or answers it with a DSN) and then expunges it from INBOX, so the operator never sees it
// and the mail store keeps it only between the two commits. A crash in between hands it over again at
// the next start: the relay recognises a request it has seen.

// relayRescan is how often the intake looks at INBOX again when a hand-over failed (a temporary error).
const relayRescan = 30 * time.Second

// startRelay opens the gateway's relay (DKIM key of the DNS records) and runs it and the intake.
func (n *Node) startRelay(g *gateway.Gateway) error {
	gc := n.cfg.Gateway
	key, err := loadDKIMSigner(filepath.Join(n.cfg.DataDir, DKIMKeyFile))
	if err != nil {
		return err
	}
	r, err := g.NewRelay(gateway.RelayConfig{
		DKIMKey: key, DKIMSelector: DKIMSelector, Resolver: gc.Resolver, Port: gc.RelayPort,
		PerHour: gc.RelayPerHour, MaxAge: gc.RelayMaxAge, MinRetry: gc.RelayMinRetry, DeliveredReports: true,
	})
	if err != nil {
		return err
	}
	n.gw.relay = r
	n.goBackground("gateway relay", func() error { return ignoreCanceled(r.Run(n.bg)) })
	n.goBackground("gateway relay intake", func() error { return ignoreCanceled(n.relayIntake(n.bg, r)) })
	return nil
}

// relayIntake moves relay messages from INBOX to the relay until ctx is done.
func (n *Node) relayIntake(ctx context.Context, r *gateway.Relay) error {
	l := n.mail.Subscribe()
	defer l.Close()
	mb, err := n.mail.MailboxByRole(ctx, store.RoleInbox)
	if err != nil {
		return err
	}
	var after store.UID // messages up to it were looked at: handed over, or not relay messages
	for {
		retry, err := n.relayScan(ctx, r, mb.ID, &after)
		if err != nil && ctx.Err() == nil {
			n.log.Error("gateway: relay intake", "err", err)
			retry = true
		}
		t := time.NewTimer(relayRescan)
		if !retry {
			t.Stop()
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-l.Ready():
			l.Take()
		case <-t.C:
		}
		t.Stop()
	}
}

// relayScan hands over the relay messages of INBOX above *after, in UID order; at the first that
// fails (a temporary error) it stops and reports retry.
func (n *Node) relayScan(ctx context.Context, r *gateway.Relay, inbox store.MailboxID, after *store.UID) (retry bool, err error) {
	list, err := n.mail.List(ctx, inbox, store.ListQuery{})
	if err != nil {
		return false, err
	}
	for _, mi := range list.Messages {
		if mi.UID <= *after {
			continue
		}
		if err := n.relayOne(ctx, r, inbox, mi.UID); err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			n.log.Warn("gateway: relay hand-over failed, will retry", "uid", mi.UID, "err", err)
			return true, nil
		}
		*after = mi.UID
	}
	return false, nil
}

// relayOne hands one INBOX message to the relay if it is a relay message from the Tangle, and then
// expunges it; any other message is left alone.
func (n *Node) relayOne(ctx context.Context, r *gateway.Relay, inbox store.MailboxID, uid store.UID) error {
	m, err := n.mail.Message(ctx, inbox, uid)
	if errors.Is(err, store.ErrNoMessage) {
		return nil
	}
	if err != nil {
		return err
	}
	if !m.Meta.ViaTangle || m.Meta.SenderVerified == "" {
		return nil
	}
	hdr, err := n.mail.RawHeader(ctx, inbox, uid)
	if err != nil {
		return err
	}
	if !mail.IsRelay(hdr) {
		return nil
	}
	sender, err := mail.ParseRecipient(m.Meta.SenderVerified)
	if err != nil {
		return fmt.Errorf("stored sender: %w", err)
	}
	raw, err := n.mail.Raw(ctx, inbox, uid)
	if err != nil {
		return err
	}
	err = r.Submit(ctx, sender, raw)
	clear(raw)
	if err != nil && !errors.Is(err, gateway.ErrRelayRefused) {
		return err
	}
	// Two transactions: a crash between them leaves a \Deleted relay message that the next scan hands
	// over again (the relay knows it) and expunges.
	set := store.UIDSetOf(uid)
	if _, err := n.mail.StoreFlags(ctx, inbox, set, store.FlagChange{Op: store.FlagsAdd, Flags: store.Flags{System: store.FlagDeleted}}); err != nil {
		return err
	}
	if _, err := n.mail.ExpungeUIDs(ctx, inbox, set); err != nil {
		return err
	}
	// The store zeroes what it frees (WithSecureDelete on a gateway); the write-ahead log still holds
	// the message until a checkpoint. Not an error for the hand-over: the next one retries.
	if err := n.mail.Checkpoint(ctx); err != nil {
		n.log.Debug("gateway: relay message still in the mail store's log", "err", err)
	}
	n.outbox.Notify() // a refusal DSN may be waiting
	return nil
}

// loadDKIMSigner reads the gateway's DKIM key, made by loadOrCreateDKIM.
func loadDKIMSigner(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseDKIMKey(path, b)
}

// parseDKIMKey decodes the DKIM key file's contents (PEM, PKCS#8 RSA).
func parseDKIMKey(path string, b []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", path)
	}
	return rk, nil
}

// closeRelay closes the relay's queue, after the background goroutines (Run, the intake) are done.
func (n *Node) closeRelay() error {
	if n.gw == nil || n.gw.relay == nil {
		return nil
	}
	return n.gw.relay.Close()
}

// GatewayRelay is the gateway's outbound relay, nil without a gateway.
func (n *Node) GatewayRelay() *gateway.Relay {
	if n.gw == nil {
		return nil
	}
	return n.gw.relay
}

// RelayGatewayFile, in a user's data directory, names (as <address>@tangle) the gateway the user
// claimed an address on with "tanglemail gateway claim": without --relay-gateway the node sends
// Internet mail through it.
const RelayGatewayFile = "relay-gateway"

// SaveRelayGateway records gw as the user's relay gateway (after a claim).
func SaveRelayGateway(dataDir string, gw identity.Address) error {
	return atomicfile.Write(filepath.Join(dataDir, RelayGatewayFile), []byte(gw.Mail()+"\n"), 0o600)
}

// ForgetRelayGateway removes the record if it names gw (after the revoke of a claim), and the
// claimed Internet address recorded with it (InternetAddressFile).
func ForgetRelayGateway(dataDir string, gw identity.Address) error {
	a, ok, err := LoadRelayGateway(dataDir)
	if err != nil || !ok || !a.Equal(gw) {
		return err
	}
	if err := os.Remove(filepath.Join(dataDir, InternetAddressFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Remove(filepath.Join(dataDir, RelayGatewayFile))
}

// ClaimedInternetAddress returns the recorded Internet address (InternetAddressFile) if the recorded
// relay gateway is gw (the address was claimed there), else "".
func ClaimedInternetAddress(dataDir string, gw identity.Address) (string, error) {
	if gw.Key == nil {
		return "", nil
	}
	rec, ok, err := LoadRelayGateway(dataDir)
	if err != nil || !ok || !rec.Equal(gw) {
		return "", err
	}
	addr, _, err := LoadInternetAddress(dataDir)
	return addr, err
}

// LoadRelayGateway returns the recorded relay gateway; ok is false if none is recorded.
func LoadRelayGateway(dataDir string) (gw identity.Address, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dataDir, RelayGatewayFile))
	if errors.Is(err, os.ErrNotExist) {
		return identity.Address{}, false, nil
	}
	if err != nil {
		return identity.Address{}, false, err
	}
	a, err := mail.ParseRecipient(strings.TrimSpace(string(b)))
	if err != nil {
		return identity.Address{}, false, fmt.Errorf("%s: %w", RelayGatewayFile, err)
	}
	return a, true, nil
}
