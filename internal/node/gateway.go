package node

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/gateway"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
)

// GatewayConfig runs the inbound gateway to Internet mail (internal/gateway; flags of
// "tanglemail gateway"). The gateway shares the node's identity (the sealed sender of inbound mail),
// mailbox store and outbox (which publishes what it seals) and TLS certificate.
type GatewayConfig struct {
	Enabled     bool
	Domains     []string
	Hostname    string // the MX host name; default "mx."+Domains[0]
	MXListen    string // host:port of the MX (default ":25")
	ClaimListen string // host:port of the claim API (plain HTTP; default ":4582")
	Operator    identity.Address
	Policy      gateway.Policy
	Resolver    gateway.Resolver // nil: the system's
	// MaxMessageBytes, MaxConnsPerIP, MsgsPerIPMinute: zero means the gateway's defaults.
	MaxMessageBytes int64
	MaxConnsPerIP   int
	MsgsPerIPMinute int
	// The outbound relay (relay.go; zero: gateway.RelayConfig's defaults). RelayPort is the recipients'
	// SMTP port (25; tests use another, MX records carry none).
	RelayPort     int
	RelayPerHour  int
	RelayMaxAge   time.Duration
	RelayMinRetry time.Duration
}

// DKIMKeyFile is the gateway's DKIM signing key (PEM, PKCS#8 RSA-2048) in the data directory; its public
// half is printed as the DKIM record to publish (outbound signing uses it).
const DKIMKeyFile = "gateway-dkim.pem"

// DKIMSelector is the selector of the gateway's DKIM key.
const DKIMSelector = "tanglemail"

type gatewaySide struct {
	g       *gateway.Gateway
	mxLn    net.Listener
	claimLn net.Listener
	http    *http.Server
	dkimPub []byte // DER SubjectPublicKeyInfo
	relay   *gateway.Relay
}

// startGateway opens the gateway (if enabled) and serves its MX and claim API. It runs after the
// engines and front doors, so that the outbox runs before the first mail is accepted.
func (n *Node) startGateway() error {
	gc := n.cfg.Gateway
	if !gc.Enabled {
		return nil
	}
	if gc.MXListen == "" {
		gc.MXListen = ":25"
	}
	if gc.ClaimListen == "" {
		gc.ClaimListen = ":4582"
	}
	pub, err := loadOrCreateDKIM(filepath.Join(n.cfg.DataDir, DKIMKeyFile))
	if err != nil {
		return err
	}
	g, err := gateway.New(gateway.Config{
		Identity: n.id, Queue: n.gatewayQueue, Dir: n.cfg.DataDir, Domains: gc.Domains, Hostname: gc.Hostname, Operator: gc.Operator,
		Policy: gc.Policy, Resolver: gc.Resolver, TLS: n.tls,
		MaxMessageBytes: gc.MaxMessageBytes, MaxConnsPerIP: gc.MaxConnsPerIP, MsgsPerIPMinute: gc.MsgsPerIPMinute,
		Logger: n.log.With("sub", "gateway"),
	})
	if err != nil {
		return err
	}
	s := &gatewaySide{g: g, dkimPub: pub}
	n.gw = s
	if s.mxLn, err = net.Listen("tcp", gc.MXListen); err != nil {
		return fmt.Errorf("gateway MX listen on %s: %w (choose another --mx-listen)", gc.MXListen, err)
	}
	if s.claimLn, err = net.Listen("tcp", gc.ClaimListen); err != nil {
		return fmt.Errorf("gateway claim API listen on %s: %w (choose another --claim-listen)", gc.ClaimListen, err)
	}
	if err := n.startRelay(g); err != nil {
		return err
	}
	s.http = &http.Server{Handler: g.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	// The MX port is a front door too: the outbox's proof of work gives way while it serves a client.
	act := n.frontActivity()
	n.goBackground("gateway MX", func() error { return g.ServeSMTP(act.listener(s.mxLn)) })
	n.goBackground("gateway claim API", func() error {
		if err := s.http.Serve(s.claimLn); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// gatewayQueue seals inbound mail in memory and commits the sealed envelopes to the outbox
// (outbox.EnqueueSealed), then wakes the outbox to publish them. A message too large for one envelope
// is sealed into a blob that this node serves (its ciphertext on disk, its key only in the envelopes):
// one small blob mail per recipient pays proof of work, not one chunk per 32 KiB (protocol.md §13.7).
// The recipients' nodes fetch it from here: a user's node treats its relay gateway as a contact.
func (n *Node) gatewayQueue(ctx context.Context, to []identity.Address, msg []byte) (int64, error) {
	now := time.Now()
	var id store.OutboxID
	var err error
	if content := mail.StripBcc(msg); n.blobs != nil && n.blobs.served && 1+len(content) > seal.MaxContent {
		var ref []byte
		ref, err = n.blobs.sealInbound(content, now.Add(time.Duration(n.cfg.Network.DefaultMailTTL)*time.Second))
		if err != nil {
			return 0, err
		}
		id, err = outbox.EnqueueSealedBlob(ctx, n.mail, n.id, n.cfg.Network.ID, to, ref, content, now)
	} else {
		id, err = outbox.EnqueueSealed(ctx, n.mail, n.id, n.cfg.Network.ID, to, msg, now)
	}
	if err != nil {
		return 0, err
	}
	n.outbox.Notify()
	return int64(id), nil
}

// closeGateway stops the MX and the claim API and closes the claim table (before the store).
func (n *Node) closeGateway() error {
	s := n.gw
	if s == nil {
		return nil
	}
	var errs []error
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.http.Shutdown(ctx))
		cancel()
	} else if s.claimLn != nil {
		s.claimLn.Close()
	}
	errs = append(errs, s.g.Close())
	if s.mxLn != nil {
		s.mxLn.Close()
	}
	return errors.Join(errs...)
}

// Gateway is the node's gateway, nil unless Config.Gateway.Enabled.
func (n *Node) Gateway() *gateway.Gateway {
	if n.gw == nil {
		return nil
	}
	return n.gw.g
}

// GatewayMXAddr and GatewayClaimAddr are the gateway's listening addresses ("" without a gateway).
func (n *Node) GatewayMXAddr() string {
	if n.gw == nil || n.gw.mxLn == nil {
		return ""
	}
	return n.gw.mxLn.Addr().String()
}

func (n *Node) GatewayClaimAddr() string {
	if n.gw == nil || n.gw.claimLn == nil {
		return ""
	}
	return n.gw.claimLn.Addr().String()
}

// GatewayDNSRecords are the DNS records the operator publishes for each domain (zone-file lines): MX,
// SPF, the DKIM public key and DMARC. ip is the MX's public address, if known, for the A record.
func (n *Node) GatewayDNSRecords(ip string) []string {
	if n.gw == nil {
		return nil
	}
	host := n.gw.g.Hostname()
	var out []string
	if ip != "" {
		rr := "A"
		if p := net.ParseIP(ip); p != nil && p.To4() == nil {
			rr = "AAAA"
		}
		out = append(out, fmt.Sprintf("%s. 3600 IN %s %s", host, rr, ip))
	}
	dkim := base64.StdEncoding.EncodeToString(n.gw.dkimPub)
	for _, d := range n.gw.g.Domains() {
		out = append(out,
			fmt.Sprintf("%s. 3600 IN MX 10 %s.", d, host),
			fmt.Sprintf(`%s. 3600 IN TXT "v=spf1 mx -all"`, d),
			fmt.Sprintf(`%s._domainkey.%s. 3600 IN TXT "v=DKIM1; k=rsa; p=%s"`, DKIMSelector, d, dkim),
			fmt.Sprintf(`_dmarc.%s. 3600 IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s"`, d),
		)
	}
	return out
}

// loadOrCreateDKIM returns the DER public key of the DKIM key at path, creating the key (RSA-2048,
// RFC 8301 §3.2) if the file does not exist.
func loadOrCreateDKIM(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := atomicfile.Write(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	} else if err != nil {
		return nil, err
	}
	rk, err := parseDKIMKey(path, b)
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKIXPublicKey(&rk.PublicKey)
}
