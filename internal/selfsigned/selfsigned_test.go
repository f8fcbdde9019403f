package selfsigned

import (
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// TestNew: the certificate verifies against itself for its names, for server authentication, and
// only within its validity.
func TestNew(t *testing.T) {
	c, err := New(Names{DNS: []string{"node.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf == nil || c.Leaf.Subject.CommonName != "node.test" {
		t.Fatalf("leaf %+v", c.Leaf)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.Leaf)
	for _, name := range []string{"node.test", "127.0.0.1"} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: roots}); err == nil {
		t.Error("valid for a name it does not carry")
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "node.test", Roots: roots, CurrentTime: time.Now().Add(2 * time.Hour)}); err == nil {
		t.Error("valid after its validity")
	}
}
