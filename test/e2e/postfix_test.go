package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/gateway"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/storetest"
)

// postfixLog is a Postfix instance's mail log file.
type postfixLog struct{ path string }

func (l *postfixLog) String() string {
	b, _ := os.ReadFile(l.path)
	return string(b)
}

// postfixMasterCF runs only what relaying needs, nothing chrooted; the SMTP server on a loopback port.
const postfixMasterCF = `%s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// startPostfix runs Debian's Postfix as "the Internet": its own instance (master -d) from its own
// configuration and queue directories, its SMTP server on a free loopback port, routing by transport
// (transport_maps lines such as "gw.test smtp:[127.0.0.1]:2525"), no DNS, STARTTLS when the next hop
// offers it. It returns the SMTP server's address and the mail log. It skips without postfix and when not
// root (the master needs root), and fails in both cases under CI (whose .ci/run, run as root,
// installs it).
func startPostfix(t *testing.T, transport string) (string, *postfixLog) {
	t.Helper()
	needClient(t, "postconf", "postfix")
	if os.Getuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("Postfix's master must run as root, and CI must run this test: run .ci/run as root")
		}
		t.Skip("Postfix's master must run as root")
	}
	daemonDir, err := exec.Command("postconf", "-dh", "daemon_directory").Output()
	if err != nil {
		t.Fatalf("postconf: %v", err)
	}
	master := filepath.Join(strings.TrimSpace(string(daemonDir)), "master")
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("the postfix user: %v", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	// Not t.TempDir: the postfix user must traverse the path.
	dir, err := os.MkdirTemp("", "tanglemail-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"", "conf", "queue", "queue/pid", "queue/public", "queue/private", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// What "postfix check" would create: the queue directories, owned by the mail owner.
	for _, d := range []string{"queue/public", "queue/private", "data", "queue/incoming", "queue/active",
		"queue/deferred", "queue/bounce", "queue/defer", "queue/trace", "queue/flush", "queue/hold",
		"queue/corrupt", "queue/saved", "queue/maildrop"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, "conf")
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
myhostname = mta.sender.test
mydomain = sender.test
myorigin = sender.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = texthash:%[1]s/conf/transport
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtp_tls_security_level = may
smtp_tls_loglevel = 1
maillog_file = /dev/stdout
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
biff = no
`, dir)
	// Everything not routed by the test (such as Postfix's bounces to the test's senders) is discarded:
	// no lookup ever leaves the machine.
	for name, text := range map[string]string{"main.cf": mainCF, "master.cf": fmt.Sprintf(postfixMasterCF, addr), "transport": transport + "\n* discard:\n"} {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The mail log goes to a file (maillog_file = /dev/stdout, the master's stdout): the daemons write
	// it directly, and no pipe outlives the master.
	logPath := filepath.Join(dir, "maillog")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	log := &postfixLog{path: logPath}
	cmd := exec.Command(master, "-c", conf, "-d")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own process group: stopped as one
	if err := cmd.Start(); err != nil {
		t.Fatalf("postfix master: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		children := childPIDs(cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGTERM) // the master stops its children
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		// A daemon that outlives its master (postlogd may) is this test's: stop it by its pid.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for _, pid := range children {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("postfix log:\n%s", log.String())
		}
	})
	waitFor(t, "postfix's SMTP server", 30*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("postfix exited:\n%s", log.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return addr, log
}

// childPIDs lists the processes whose parent is pid (from /proc; none where there is no /proc).
func childPIDs(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so read after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// A real Postfix ("the Internet") delivers a DKIM-signed mail for alice@gw.test, routed by transport_maps
// to a gateway node's MX (STARTTLS); the gateway checks SPF/DKIM/DMARC, seals it to alice's identity and
// publishes it; alice's node files it in INBOX with the Authentication-Results. A spoofed mail (DMARC
// p=reject) and one for an unclaimed address are refused with 550 and bounced by Postfix.
func TestPostfixToGateway(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	dns := dnstest.Start(t,
		`sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.sender.test. TXT "v=DMARC1; p=reject"`,
		`sel._domainkey.sender.test. TXT "v=DKIM1; k=ed25519; p=`+base64.StdEncoding.EncodeToString(pub)+`"`,
		`spoof.test. TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`_dmarc.spoof.test. TXT "v=DMARC1; p=reject"`,
	)
	gcfg := node.DevnetConfig(t.TempDir())
	gcfg.Gateway = node.GatewayConfig{Enabled: true, Domains: []string{"gw.test"}, MXListen: "127.0.0.1:0",
		ClaimListen: "127.0.0.1:0", Policy: gateway.Policy{Open: true}, Resolver: dns.Resolver()}
	gw, err := node.Start(context.Background(), gcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	acfg := node.DevnetConfig(t.TempDir())
	acfg.Bootstrap = gw.Network().Addrs()
	alice, err := node.Start(context.Background(), acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	waitFor(t, "peering", 20*time.Second, func() bool { return gw.Network().PeerCount() == 1 })

	if _, err := gateway.Claim(context.Background(), nil, "http://"+gw.GatewayClaimAddr(), alice.Identity(), gateway.OpClaim, "alice", "gw.test"); err != nil {
		t.Fatal(err)
	}

	pfAddr, pfLog := startPostfix(t, "gw.test smtp:["+strings.Replace(gw.GatewayMXAddr(), ":", "]:", 1))
	raw := "From: Bob <bob@sender.test>\r\nTo: Alice <alice@gw.test>\r\nSubject: from Postfix\r\n" +
		"Message-ID: <postfix-e2e@sender.test>\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\n\r\nHello Alice, through the gateway.\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(raw), &dkim.SignOptions{Domain: "sender.test", Selector: "sel", Signer: key}); err != nil {
		t.Fatal(err)
	}
	spoofed := "From: CEO <ceo@spoof.test>\r\nTo: alice@gw.test\r\nSubject: wire money\r\n\r\nnow\r\n"
	for _, m := range []struct {
		from, to, msg string
	}{
		{"bob@sender.test", "alice@gw.test", signed.String()},
		{"ceo@spoof.test", "alice@gw.test", spoofed},
		{"bob@sender.test", "nobody@gw.test", raw},
	} {
		c, err := smtp.Dial(pfAddr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendMail(m.from, []string{m.to}, strings.NewReader(m.msg)); err != nil {
			t.Fatalf("submitting to postfix: %v", err)
		}
		c.Quit()
	}
	waitFor(t, "postfix's three deliveries", 60*time.Second, func() bool {
		l := pfLog.String()
		return strings.Contains(l, "status=sent") && strings.Contains(l, "dsn=5.7.1") && strings.Contains(l, "dsn=5.1.1")
	})
	l := pfLog.String()
	if !strings.Contains(l, "to=<alice@gw.test>, relay=127.0.0.1") || !strings.Contains(l, "Trusted TLS connection established") && !strings.Contains(l, "Untrusted TLS connection established") && !strings.Contains(l, "Anonymous TLS connection established") {
		t.Errorf("postfix did not relay to the gateway over TLS:\n%s", l)
	}
	if !strings.Contains(l, "5.7.1") || !strings.Contains(l, "5.1.1") {
		t.Errorf("postfix's bounces lack the gateway's 5.7.1 (DMARC) and 5.1.1 (unknown user):\n%s", l)
	}

	waitFor(t, "the mail in alice's INBOX", 60*time.Second, func() bool {
		return len(storetest.Mailbox(t, alice.Mailboxes(), store.RoleInbox)) == 1
	})
	got := string(storetest.Mailbox(t, alice.Mailboxes(), store.RoleInbox)[0].Raw)
	for _, want := range []string{
		"Authentication-Results: mx.gw.test; spf=pass smtp.mailfrom=sender.test;",
		"dkim=pass header.d=sender.test",
		"dmarc=pass header.from=sender.test",
		"Received: from mta.sender.test ([127.0.0.1])",
		"with ESMTPS",
		"Hello Alice, through the gateway.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("alice's mail lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasPrefix(got, "Authentication-Results:") {
		t.Errorf("the Authentication-Results field is not on top:\n%s", got)
	}
}
