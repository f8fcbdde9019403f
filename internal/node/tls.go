package node

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/selfsigned"
)

// Files of the self-signed certificate that STARTTLS presents to mail clients.
const (
	CertFile = "tls-cert.pem"
	KeyFile  = "tls-key.pem" // 0600
)

// LoadOrCreateTLS returns a TLS configuration with the data directory's self-signed certificate,
// creating it (package selfsigned: ECDSA P-256, valid for localhost, 127.0.0.1 and ::1, ten years) on first use. Mail
// clients ask the user once to accept it; its SHA-256 fingerprint is in `tanglemail status`.
func LoadOrCreateTLS(dir string) (*tls.Config, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if errors.Is(err, os.ErrNotExist) {
		if err := createCert(certPath, keyPath); err != nil {
			return nil, fmt.Errorf("create TLS certificate: %w", err)
		}
		cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate (delete %s and %s to make a new one): %w", certPath, keyPath, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func createCert(certPath, keyPath string) error {
	cert, err := selfsigned.New(selfsigned.Names{
		CommonName: "tanglemail local node",
		DNS:        []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}, 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644)
}
