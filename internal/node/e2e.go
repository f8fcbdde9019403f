package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/e2e"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/pgp/wkd"
)

// End-to-end encryption of the user's Internet mail with OpenPGP users (issue 14 item 3, protocol.md
// §16.5): the node meets the outbox and internal/e2e here. With a relay gateway and a claimed
// Internet address (Config.InternetAddress), the node opens the e2e engine (its OpenPGP key is made on
// first use, sealed under the identity passphrase) and the outbox hands every relay message for the
// gateway to prepareRelay before it is sealed: From becomes the claimed address, our Autocrypt
// header is added, and the message is encrypted as PGP/MIME to every Internet recipient and to us when
// each has a key (peer table, then Web Key Directory), so the gateway relays ciphertext.
//
// Which copy goes to Sent: the Sent copy (and the stored outbox item) is the message as submitted,
// readable by any IMAP client; the encrypted form exists only inside the envelope sealed to the
// gateway. Relay messages larger than e2eMaxRelay are sealed unencrypted, from the store's reader.

// e2eMaxRelay is the largest relay message encrypted end to end (read whole into memory to encrypt).
const e2eMaxRelay = 8 << 20

// InternetAddressFile, in a user's data directory, holds the Internet address (name@domain) the user
// claimed with "tanglemail gateway claim" (beside RelayGatewayFile): the From of their Internet mail
// and the address of their OpenPGP key.
const InternetAddressFile = "internet-address"

// SaveInternetAddress records addr as the user's claimed Internet address (after a claim).
func SaveInternetAddress(dataDir, addr string) error {
	if err := mail.CheckInternetAddress(addr); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dataDir, InternetAddressFile), []byte(strings.ToLower(addr)+"\n"), 0o600)
}

// LoadInternetAddress returns the recorded Internet address; ok is false if none is recorded.
func LoadInternetAddress(dataDir string) (addr string, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dataDir, InternetAddressFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	addr = strings.TrimSpace(string(b))
	if err := mail.CheckInternetAddress(addr); err != nil {
		return "", false, fmt.Errorf("%s: %w", InternetAddressFile, err)
	}
	return addr, true, nil
}

// openE2E opens the e2e engine when the node relays Internet mail as a claimed address. If the key
// cannot be opened the node runs without it (logged at ERROR); an error is returned for none today.
func (n *Node) openE2E() error {
	cfg := n.cfg
	if cfg.RelayGateway.Key == nil || cfg.InternetAddress == "" {
		return nil
	}
	var lookup e2e.KeyLookup = &wkd.Cache{Source: &wkd.Client{}}
	if cfg.E2ELookup != nil {
		lookup = cfg.E2ELookup
	}
	e, err := e2e.Open(cfg.DataDir, cfg.InternetAddress, cfg.Passphrase, lookup)
	if err != nil {
		// The node still serves mail, without end-to-end encryption (say, an openpgp.key made for
		// another address): the operator reads why.
		n.log.Error("e2e: end-to-end encryption is off: the OpenPGP key could not be opened", "err", err)
		return nil
	}
	n.e2e = e
	return nil
}

// E2E is the node's end-to-end engine, nil without a relay gateway and a claimed Internet address.
func (n *Node) E2E() *e2e.E2E { return n.e2e }

// closeE2E closes the engine's peer table, after the background work is done.
func (n *Node) closeE2E() error {
	if n.e2e == nil {
		return nil
	}
	return n.e2e.Close()
}

// prepareRelay is the outbox's Config.PrepareRelay: a relay message whose one recipient is the relay
// gateway gets the claimed address as From, our Autocrypt header and, when every Internet recipient
// has a key, PGP/MIME encryption (e2e.Prepare). Anything else is returned unchanged. A malformed relay
// message goes unchanged too: the gateway answers it with a DSN.
func (n *Node) prepareRelay(ctx context.Context, rcpts []string, content []byte) (outbox.Prepared, error) {
	same := outbox.Prepared{Message: content}
	if n.e2e == nil || len(rcpts) != 1 {
		return same, nil
	}
	if gw, err := mail.ParseRecipient(rcpts[0]); err != nil || !gw.Equal(n.cfg.RelayGateway) {
		return same, nil
	}
	to, msg, err := mail.ParseRelay(content)
	if err != nil {
		return same, nil
	}
	out, err := n.e2e.Prepare(ctx, n.fromInternet(msg), to)
	if err != nil {
		return outbox.Prepared{}, err
	}
	if out.Encrypted {
		n.log.Info("e2e: relay message encrypted end to end", "recipients", len(to))
	} else {
		n.log.Info("e2e: relay message not encrypted", "recipients", len(to))
		n.log.Debug("e2e: relay message not encrypted", "reason", out.Reason)
	}
	relay, err := mail.EncodeRelay(to, out.Message)
	return outbox.Prepared{Message: relay, Encrypted: out.Encrypted}, err
}

// fromInternet returns msg with its From (the user's tangle address, as submission requires) replaced
// by the claimed Internet address, the display name kept, and Sender removed: the From the gateway
// will set anyway (it only relays for claimed addresses), now also inside the encrypted part and
// matching the OpenPGP key and Autocrypt header.
func (n *Node) fromInternet(msg []byte) []byte {
	m, err := mail.Parse(msg)
	if err != nil || len(m.From) != 1 {
		return msg
	}
	if a, err := m.From[0].Tangle(); err != nil || !a.Equal(n.id.Address()) {
		return msg
	}
	from := mail.Mailbox{Name: m.From[0].Name, Address: n.e2e.Addr}
	return append([]byte("From: "+from.String()+"\r\n"), mail.StripFields(msg, "From", "Sender")...)
}

// inboundFilterBlob is the inbox's Config.FilterBlob: blob mail from the relay gateway up to
// e2eMaxRelay goes through inboundFilter; any other blob mail streams into INBOX untouched.
func (n *Node) inboundFilterBlob(sender identity.Address) int64 {
	if n.e2e == nil || !sender.Equal(n.cfg.RelayGateway) {
		return 0
	}
	return e2eMaxRelay
}

// inboundFilter is the inbox's Config.Filter: mail whose verified sender is the relay gateway (Internet
// mail the gateway sealed to us) and at most e2eMaxRelay bytes goes through e2e.Inbound, which learns
// the correspondent's Autocrypt key and decrypts PGP/MIME addressed to our key, adding the
// X-Tanglemail-E2E mark. Any other mail is filed as it came. Blob mail from the gateway up to
// e2eMaxRelay is passed too (inboundFilterBlob); larger Internet mail is filed undecrypted.
func (n *Node) inboundFilter(ctx context.Context, sender identity.Address, raw []byte) []byte {
	if n.inboundFilterBlob(sender) == 0 || len(raw) > e2eMaxRelay {
		return raw
	}
	f, err := n.e2e.Inbound(ctx, raw)
	if err != nil {
		n.log.Warn("e2e: inbound Internet mail: peer table", "err", err)
	}
	switch {
	case f.Decrypted:
		n.log.Info("e2e: inbound Internet mail decrypted")
	case f.Reason != "":
		n.log.Info("e2e: inbound Internet mail not decrypted")
		n.log.Debug("e2e: inbound Internet mail not decrypted", "reason", f.Reason)
	}
	return f.Message
}
