package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/gateway"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/node"
)

type gatewayFlags struct {
	*nodeFlags
	domains     *listFlag
	hostname    string
	mxListen    string
	claimListen string
	policy      string
	allow       *listFlag
	operator    string
	maxSize     string
	publicIP    string
	relayHour   int // --relay-per-hour: outbound messages per claimed address and hour
	dns         string
	// claim (a user's): --gateway, --gateway-address, --revoke
	gatewayURL  string
	gatewayAddr string
	revoke      bool
}

func gatewayCommand() *command {
	return &command{
		name:    "gateway",
		summary: "run a node that is the MX of your domain (Internet mail in); claim: claim name@domain on a gateway",
		usage:   "[claim <name@domain> --gateway <url> [--revoke]]",
		about: `Runs a node that is the MX of one or more DNS domains (docs/protocol.md §15): it accepts Internet mail
for addresses that tanglemail users have claimed, checks SPF, DKIM and DMARC, records the results in an
Authentication-Results field, seals the mail to the user in memory and publishes it over the Tangle like
any mail. It answers 250 only once the sealed mail is on disk, and keeps no readable copy. Mail to the
RFC 2142 role names (postmaster, abuse, …) goes to --operator (default: this node's own address, read
it in this node's IMAP INBOX). On start it prints the DNS records to publish.

  tanglemail gateway --domain example.org [--mx-listen :25] [--claim-listen :4582] [--policy open]

Users claim an address with their own identity (their node's data directory), through the gateway's
claim API:

  tanglemail gateway claim alice@example.org --gateway http://gw.example.org:4582
  tanglemail gateway claim alice@example.org --gateway http://gw.example.org:4582 --revoke

The claim is signed by the user's identity key and bound to the gateway, the address, the time and a
nonce; --gateway-address pins the gateway's tanglemail address (else the one the gateway reports is
used). A claim also records the gateway in the user's data directory: from its next start the user's
node accepts Internet recipients in SMTP submission and sends them to the gateway (sealed, over the
Tangle; tanglemail node --relay-gateway names another). The gateway relays only for identities holding
a claim (at most --relay-per-hour messages per claim), sends as the claimed address, DKIM-signs with the
key of the printed record, delivers by MX lookup with STARTTLS from a durable queue, and reports back
with a delivery notice or a bounce (RFC 3464) in the user's INBOX. Every node flag (see tanglemail node --help) applies to the gateway's node too.`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &gatewayFlags{nodeFlags: nodeCommand().flags(fs, getenv).(*nodeFlags)}
			f.domains, f.allow = newListFlag(), newListFlag()
			fs.Var(f.domains, "domain", "domains the gateway is the MX of, comma-separated (required to run it)")
			fs.StringVar(&f.hostname, "hostname", "", "the MX host name (EHLO, Authentication-Results, the MX record); default mx.<first domain>")
			fs.StringVar(&f.mxListen, "mx-listen", ":25", "host:port of the MX (SMTP with STARTTLS)")
			fs.StringVar(&f.claimListen, "claim-listen", ":4582", "host:port of the claim API (HTTP; requests are signed)")
			fs.StringVar(&f.policy, "policy", "open", "who may claim addresses: open (anyone) or allowlist (--allow)")
			fs.Var(f.allow, "allow", "with --policy allowlist: tanglemail addresses that may claim, comma-separated")
			fs.StringVar(&f.operator, "operator", "", "tanglemail address that receives postmaster@, abuse@, … (default: this node's)")
			fs.StringVar(&f.maxSize, "max-message-size", "10MiB", "largest message accepted (larger: 552)")
			fs.IntVar(&f.relayHour, "relay-per-hour", gateway.DefaultRelayPerHour, "outbound mail: messages accepted per claimed address and hour (more: a DSN)")
			fs.StringVar(&f.publicIP, "public-ip", "", "the MX's public IP, printed in the A record to publish")
			fs.StringVar(&f.dns, "dns", "", "host:port of the DNS server for the SPF, DKIM and DMARC lookups (default: the system's resolver)")
			fs.StringVar(&f.gatewayURL, "gateway", "", "claim: the gateway's claim API, e.g. http://gw.example.org:4582")
			fs.StringVar(&f.gatewayAddr, "gateway-address", "", "claim: the gateway's tanglemail address, to pin it")
			fs.BoolVar(&f.revoke, "revoke", false, "claim: revoke the claim instead")
			return f
		},
		run: runGateway,
	}
}

func parseTangleAddress(s string) (identity.Address, error) {
	if strings.Contains(s, "@") {
		return mail.ParseRecipient(s)
	}
	return identity.ParseAddress(s)
}

func runGateway(env *cmdEnv, o any, args []string) error {
	f := o.(*gatewayFlags)
	if len(args) > 0 && args[0] == "claim" {
		return runGatewayClaim(env, f, args[1:])
	}
	if len(f.domains.values) == 0 && len(args) == 0 {
		return usageError{"--domain is required: the domain(s) this gateway is the MX of"}
	}
	cfg, err := nodeConfig(env, f.nodeFlags, args)
	if err != nil {
		return err
	}
	gc := node.GatewayConfig{Enabled: true, Domains: f.domains.values, Hostname: f.hostname,
		MXListen: f.mxListen, ClaimListen: f.claimListen}
	switch f.policy {
	case "open":
		gc.Policy.Open = true
	case "allowlist":
		for _, a := range f.allow.values {
			addr, err := parseTangleAddress(a)
			if err != nil {
				return usageError{fmt.Sprintf("--allow %q: %v", a, err)}
			}
			gc.Policy.Allow = append(gc.Policy.Allow, addr)
		}
	default:
		return usageError{fmt.Sprintf("--policy %q: want open or allowlist", f.policy)}
	}
	if f.operator != "" {
		if gc.Operator, err = parseTangleAddress(f.operator); err != nil {
			return usageError{fmt.Sprintf("--operator %q: %v", f.operator, err)}
		}
	}
	if gc.MaxMessageBytes, err = parseSize(f.maxSize); err != nil || gc.MaxMessageBytes < 64<<10 {
		return usageError{fmt.Sprintf("--max-message-size %q: want a size of at least 64KiB, such as 10MiB", f.maxSize)}
	}
	if f.relayHour < 1 {
		return usageError{fmt.Sprintf("--relay-per-hour %d: want at least 1", f.relayHour)}
	}
	gc.RelayPerHour = f.relayHour
	if f.dns != "" {
		if _, _, err := net.SplitHostPort(f.dns); err != nil {
			return usageError{fmt.Sprintf("--dns %q: want host:port", f.dns)}
		}
		server := f.dns
		gc.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	cfg.Gateway = gc
	return serveNode(env, f.nodeFlags, cfg, func(n *node.Node) {
		printGatewayBanner(env.stdout, n, f.publicIP)
	})
}

// printGatewayBanner says where the gateway listens and which DNS records to publish.
func printGatewayBanner(w io.Writer, n *node.Node, publicIP string) {
	g := n.Gateway()
	fmt.Fprintf(w, `
Gateway for %s:
  MX (SMTP, STARTTLS):  %s   (host name %s)
  Claim API (HTTP):     http://%s/   users run: tanglemail gateway claim name@%s --gateway http://<this host>:<port>
  Role mail (postmaster@, abuse@, …) is delivered to the operator's tanglemail address.

Publish these DNS records (zone-file syntax; the DKIM key is in the data directory, %s):
`, strings.Join(g.Domains(), ", "), n.GatewayMXAddr(), g.Hostname(), n.GatewayClaimAddr(), g.Domains()[0], node.DKIMKeyFile)
	if publicIP == "" {
		fmt.Fprintf(w, "  (add an A/AAAA record for %s with this machine's public IP; --public-ip prints it)\n", g.Hostname())
	}
	for _, r := range n.GatewayDNSRecords(publicIP) {
		fmt.Fprintf(w, "  %s\n", r)
	}
}

// runGatewayClaim claims (or revokes) name@domain on a gateway for the identity in --data-dir.
func runGatewayClaim(env *cmdEnv, f *gatewayFlags, args []string) error {
	if len(args) != 1 || !strings.Contains(args[0], "@") {
		return usageError{"gateway claim takes one address, name@domain"}
	}
	if f.gatewayURL == "" {
		return usageError{"gateway claim needs --gateway <url of the gateway's claim API>"}
	}
	local, domain, _ := strings.Cut(args[0], "@")
	_, pass, err := logAndPassphrase(env, "error", f.passphraseFile)
	if err != nil {
		return err
	}
	id, err := node.LoadIdentity(f.dataDir, pass)
	if err != nil {
		return err
	}
	ctx, cancel := env.context()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 30*time.Second)
	defer cancelT()
	base := strings.TrimSuffix(f.gatewayURL, "/")
	info, gw, err := gateway.FetchInfo(ctx, nil, base)
	if err != nil {
		return fmt.Errorf("asking the gateway who it is: %w", err)
	}
	if f.gatewayAddr != "" {
		pinned, err := parseTangleAddress(f.gatewayAddr)
		if err != nil {
			return usageError{fmt.Sprintf("--gateway-address %q: %v", f.gatewayAddr, err)}
		}
		if !pinned.Equal(gw) {
			return fmt.Errorf("the gateway at %s is %s, not the pinned %s", base, info.Address, f.gatewayAddr)
		}
	}
	op := byte(gateway.OpClaim)
	if f.revoke {
		op = gateway.OpRevoke
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	req, err := gateway.SignClaim(id, op, gw, local, domain, time.Now(), nonce)
	if err != nil {
		return usageError{err.Error()}
	}
	ans, err := gateway.SubmitClaim(ctx, nil, base, req)
	if err != nil {
		return err
	}
	if ans.Op == "revoke" {
		fmt.Fprintf(env.stdout, "Revoked: %s no longer delivers to %s.\n", ans.Address, id.Address().Mail())
		return node.ForgetRelayGateway(f.dataDir, gw)
	}
	fmt.Fprintf(env.stdout, "Claimed: mail to %s is delivered to %s through the gateway %s.\n", ans.Address, id.Address().Mail(), info.Address)
	if err := node.SaveRelayGateway(f.dataDir, gw); err != nil {
		return err
	}
	if err := node.SaveInternetAddress(f.dataDir, ans.Address); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "Your node sends mail to Internet addresses through this gateway, as %s (from its next start).\n", ans.Address)
	return nil
}
