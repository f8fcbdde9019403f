// Package selfsigned makes the self-signed TLS server certificates of the project: the node's, which
// mail clients accept once for STARTTLS (node.LoadOrCreateTLS), and the tests' of the front doors.
// One maker, so that every certificate has the same key type (ECDSA P-256), usage (server
// authentication) and a random 127-bit serial. It holds no state and takes no locks.
package selfsigned

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"time"
)

// Names are the names a certificate is valid for: DNS names and IP addresses. The first DNS name
// (else "localhost") is its subject's common name unless CommonName is set.
type Names struct {
	CommonName string
	DNS        []string
	IPs        []net.IP
}

// New makes a self-signed server certificate for names, valid from an hour ago for validity. The
// result carries its parsed Leaf.
func New(names Names, validity time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	cn := names.CommonName
	if cn == "" {
		cn = "localhost"
		if len(names.DNS) > 0 {
			cn = names.DNS[0]
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names.DNS,
		IPAddresses:           names.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
