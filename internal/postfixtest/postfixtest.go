// Package postfixtest runs Debian's Postfix as "the Internet" for the gateway's interop tests: a
// private instance per test (its master run in the foreground, master -d) from its own configuration,
// queue and data directories, its SMTP server on a free loopback port, and its mail log in a file. It
// owns what every such instance shares: finding Postfix, skipping the test without it or without root
// (the master needs root) and failing it under CI=true instead (.ci/run, run as root, installs the
// postfix package), the directories Postfix's user must reach and own, master.cf, the main.cf skeleton
// (loopback only, no DNS lookups, no local delivery or aliases), and stopping the master and every
// daemon it started when the test ends. A test adds what its instance is for (Config): main.cf lines
// such as transport_maps, files they name, STARTTLS with a self-signed certificate, delivery of a
// domain to a Maildir. It is a test-support package (it imports testing); no production package
// imports it.
package postfixtest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
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

	"github.com/tanglemail/tanglemail/internal/selfsigned"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// Config is what one instance is for. Its main.cf lines may name the instance's directories the way
// Postfix expands them: $config_directory (where Files are written) and $queue_directory.
type Config struct {
	// Hostname is myhostname (the name in its EHLO and Received fields); mydomain is what follows its
	// first dot.
	Hostname string
	// Main is main.cf lines added to the skeleton (one per line), such as
	// "transport_maps = texthash:$config_directory/transport".
	Main string
	// Files are written into the configuration directory, by name.
	Files map[string]string
	// TLS offers STARTTLS on the SMTP server with a self-signed certificate for Hostname, and records
	// it in the Received field ("with ESMTPS").
	TLS bool
	// Deliver is a domain whose mail, for every recipient, the instance files in one Maildir (Postfix's
	// virtual delivery agent): read it with Maildir. Empty: the instance delivers nothing itself.
	Deliver string
}

// Postfix is one running instance.
type Postfix struct {
	Addr string // its SMTP server, 127.0.0.1:Port
	Port int

	dir string
}

// masterCF runs only what relaying and virtual delivery need, nothing chrooted; the SMTP server on a
// loopback port (%s).
const masterCF = `%s inet n - n - - smtpd
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
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// mainCF is the skeleton of every instance's main.cf (%[1]s its directory, %[2]s myhostname, %[3]s
// mydomain): loopback only, no DNS (the SMTP client reaches only the hosts the test routes to, by
// address), no local delivery.
const mainCF = `compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
myhostname = %[2]s
mydomain = %[3]s
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
maillog_file = /dev/stdout
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
biff = no
`

// mailUID is the owner of the delivered Maildir (nobody): the virtual delivery agent writes as it.
const mailUID = 65534

// Start runs a Postfix instance for cfg until t ends, and waits until its SMTP server accepts
// connections. It skips t when Postfix is not installed or the test does not run as root, and fails
// t in both cases under CI. When t has failed, the cleanup logs the mail log.
func Start(t testing.TB, cfg Config) *Postfix {
	t.Helper()
	master := masterPath(t)
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("the postfix user: %v", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	// Not t.TempDir (0700 down a path of 0700 directories): the postfix user must traverse the path.
	dir, err := os.MkdirTemp("", "tanglemail-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // after the master's stop, registered below
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"conf", "queue", "queue/pid"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// What "postfix check" would create: the queue directories, owned by the mail owner.
	for _, d := range []string{"queue/public", "queue/private", "data", "queue/incoming", "queue/active",
		"queue/deferred", "queue/bounce", "queue/defer", "queue/trace", "queue/flush", "queue/hold",
		"queue/corrupt", "queue/saved", "queue/maildrop"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, d), uid, -1); err != nil {
			t.Fatal(err)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postfix{Addr: ln.Addr().String(), Port: ln.Addr().(*net.TCPAddr).Port, dir: dir}
	ln.Close()

	domain := cfg.Hostname
	if i := strings.IndexByte(domain, '.'); i >= 0 {
		domain = domain[i+1:]
	}
	main := []byte(fmt.Sprintf(mainCF, dir, cfg.Hostname, domain))
	files := map[string][]byte{"master.cf": []byte(fmt.Sprintf(masterCF, p.Addr))}
	if cfg.TLS {
		cert, key := certPEM(t, cfg.Hostname)
		files["cert.pem"], files["key.pem"] = cert, key
		main = append(main, `smtpd_tls_security_level = may
smtpd_tls_cert_file = $config_directory/cert.pem
smtpd_tls_key_file = $config_directory/key.pem
smtpd_tls_received_header = yes
`...)
	}
	if cfg.Deliver != "" {
		if err := os.Mkdir(filepath.Join(dir, "mail"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, "mail"), mailUID, mailUID); err != nil {
			t.Fatal(err)
		}
		main = append(main, "virtual_mailbox_domains = "+cfg.Deliver+`
virtual_mailbox_base = `+dir+`/mail
virtual_mailbox_maps = static:maildir/
virtual_uid_maps = static:`+strconv.Itoa(mailUID)+`
virtual_gid_maps = static:`+strconv.Itoa(mailUID)+"\n"...)
	}
	if cfg.Main != "" {
		main = append(main, strings.TrimSuffix(cfg.Main, "\n")+"\n"...)
	}
	files["main.cf"] = main
	for name, text := range cfg.Files {
		files[name] = []byte(text)
	}
	for name, b := range files {
		mode := os.FileMode(0o644)
		if name == "key.pem" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, "conf", name), b, mode); err != nil {
			t.Fatal(err)
		}
	}

	// The mail log goes to a file (maillog_file = /dev/stdout, the master's stdout): the daemons write
	// it directly, and no pipe outlives the master.
	logFile, err := os.Create(filepath.Join(dir, "maillog"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(master, "-c", filepath.Join(dir, "conf"), "-d")
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
			t.Logf("postfix log:\n%s", p.Log())
		}
	})
	testwait.For(t, "postfix's SMTP server", 30*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("postfix exited:\n%s", p.Log())
		default:
		}
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return p
}

// Log returns the mail log so far.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// Maildir returns the messages delivered so far to the Maildir of Config.Deliver's domain.
func (p *Postfix) Maildir(t testing.TB) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(p.dir, "mail", "maildir", "new", "*"))
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// masterPath returns the path of Postfix's master, skipping t when Postfix is not installed or t is
// not root, failing it instead under CI.
func masterPath(t testing.TB) string {
	t.Helper()
	ci := os.Getenv("CI") != ""
	postconf, err := exec.LookPath("postconf")
	if err != nil {
		postconf = "/usr/sbin/postconf" // not in a user's PATH
		if _, err := os.Stat(postconf); err != nil {
			if ci {
				t.Fatal("postfix is not installed, and CI must run this test: add the Debian package postfix to PKGS in .ci/run")
			}
			t.Skip("postfix is not installed (apt-get install --no-install-recommends postfix)")
		}
	}
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("Postfix's master must run as root, and CI must run this test: run .ci/run as root")
		}
		t.Skip("Postfix's master must run as root")
	}
	daemonDir, err := exec.Command(postconf, "-dh", "daemon_directory").Output()
	if err != nil {
		t.Fatalf("postconf: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(daemonDir)), "master")
}

// certPEM makes a self-signed certificate for name and its key, PEM-encoded.
func certPEM(t testing.TB, name string) (cert, key []byte) {
	t.Helper()
	c, err := selfsigned.New(selfsigned.Names{DNS: []string{name}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
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
