package seal

import (
	"crypto/ecdh"
	"errors"

	"github.com/cloudflare/circl/dh/x25519"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// fastX25519 is the recipient's X25519 private key as an ecdh.KeyExchanger backed by circl's X25519,
// whose amd64 assembly (BMI2/ADX) is about 27% faster than crypto/ecdh's on the machines we measured
// (docs/decisions.md). crypto/hpke still does everything else (RFC 9180 §4.1 DHKEM, key schedule,
// AEAD); only the one scalar multiplication of decapsulation runs here, and it is the dominant cost of
// trial-opening a block that is not for us.
type fastX25519 struct {
	priv x25519.Key
	pub  *ecdh.PublicKey
}

var errLowOrder = errors.New("seal: X25519 with a low-order point")

func newFastX25519(id *identity.Identity) *fastX25519 {
	k := &fastX25519{pub: id.X25519PublicKey()}
	copy(k.priv[:], id.X25519PrivateKey().Bytes())
	return k
}

func (k *fastX25519) PublicKey() *ecdh.PublicKey { return k.pub }
func (k *fastX25519) Curve() ecdh.Curve          { return ecdh.X25519() }

// ECDH computes X25519(priv, remote) (RFC 7748 §5) and, like crypto/ecdh, rejects an all-zero result,
// which a low-order remote point produces (RFC 7748 §6.1).
func (k *fastX25519) ECDH(remote *ecdh.PublicKey) ([]byte, error) {
	if remote.Curve() != ecdh.X25519() {
		return nil, errors.New("seal: remote key is not an X25519 key")
	}
	var pub, shared x25519.Key
	copy(pub[:], remote.Bytes())
	if !x25519.Shared(&shared, &k.priv, &pub) {
		return nil, errLowOrder
	}
	return shared[:], nil
}
