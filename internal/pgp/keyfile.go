package pgp

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/identity"
)

// KeyFile is the OpenPGP key's file name in the data directory.
const KeyFile = "openpgp.key"

// Key file errors.
var (
	ErrKeyCorrupt      = errors.New("pgp: corrupt OpenPGP key file")
	ErrWrongPassphrase = errors.New("pgp: wrong passphrase for the OpenPGP key (or the key file was altered)")
	ErrNeedPassphrase  = errors.New("pgp: the OpenPGP key is passphrase-protected: give the identity's passphrase")
	ErrKeyExists       = errors.New("pgp: an OpenPGP key file already exists; refusing to overwrite it")
)

const (
	keyFormat  = "tanglemail-openpgp"
	keyVersion = 1
	keyAAD     = "tanglemail/v1/openpgp"
	maxKeyFile = 256 << 10
)

// timeNow is the clock CreateKey stamps keys with.
var timeNow = time.Now

// KeyKDF is argon2id's cost for the key file (the identity keystore's: time 3, 64 MiB, 4 lanes). Tests
// lower it.
var KeyKDF = identity.KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

type keyJSON struct {
	Format      string `json:"format"`
	Version     int    `json:"version"`
	Fingerprint string `json:"fingerprint"`
	PublicKey   string `json:"public_key"`           // base64 of the binary certificate
	SecretKey   string `json:"secret_key,omitempty"` // unencrypted: base64 of the secret key packets
	identity.SealedFields
}

func keyAD(j *keyJSON, salt []byte) []byte {
	ad := []byte(keyAAD)
	ad = append(ad, byte(j.Version))
	ad = append(ad, j.Fingerprint...)
	ad = append(ad, j.PublicKey...)
	ad = binary.LittleEndian.AppendUint32(ad, j.Time)
	ad = binary.LittleEndian.AppendUint32(ad, j.MemoryKiB)
	ad = append(ad, j.Threads)
	return append(ad, salt...)
}

// CreateKey generates a key for addr (Generate) and saves it at path (SaveKey). It refuses to overwrite
// an existing file.
func CreateKey(path, addr string, passphrase []byte) (*Key, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrKeyExists, path)
	}
	k, err := Generate(addr, timeNow())
	if err != nil {
		return nil, err
	}
	return k, SaveKey(path, k, passphrase)
}

// SaveKey writes k to path, atomically with mode 0600, its secret part sealed under passphrase (in
// clear if passphrase is empty, as the identity keystore does).
func SaveKey(path string, k *Key, passphrase []byte) error {
	var sec bytes.Buffer
	if err := k.e.SerializePrivateWithoutSigning(&sec, nil); err != nil {
		return fmt.Errorf("pgp: serialize key: %w", err)
	}
	raw := sec.Bytes()
	defer clear(raw)
	pub := k.Public()
	j := keyJSON{Format: keyFormat, Version: keyVersion, Fingerprint: pub.Fingerprint(),
		PublicKey: base64.StdEncoding.EncodeToString(pub.Bytes())}
	if len(passphrase) == 0 {
		j.SecretKey = base64.StdEncoding.EncodeToString(raw)
	} else {
		if err := j.Seal(passphrase, raw, KeyKDF, func(salt []byte) []byte { return keyAD(&j, salt) }); err != nil {
			return err
		}
	}
	out, err := json.MarshalIndent(&j, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(out, '\n'), 0o600)
}

// LoadKey reads the key SaveKey wrote. A sealed key needs its passphrase (none: ErrNeedPassphrase; a
// wrong one: ErrWrongPassphrase); a file that group or others may read gives an error wrapping
// identity.ErrInsecurePermissions; a malformed one, an error wrapping ErrKeyCorrupt.
func LoadKey(path string, passphrase []byte) (*Key, error) {
	data, err := identity.ReadPrivateFile(path, maxKeyFile)
	if errors.Is(err, identity.ErrCorrupt) {
		return nil, fmt.Errorf("%w: %v", ErrKeyCorrupt, err)
	}
	if err != nil {
		return nil, err
	}
	defer clear(data)
	var j keyJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || j.Format != keyFormat || j.Version != keyVersion {
		return nil, fmt.Errorf("%w: %s", ErrKeyCorrupt, path)
	}
	var raw []byte
	if j.SecretKey != "" {
		raw, err = base64.StdEncoding.DecodeString(j.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("%w: secret_key", ErrKeyCorrupt)
		}
	} else {
		if len(passphrase) == 0 {
			return nil, ErrNeedPassphrase
		}
		raw, err = j.Open(passphrase, func(salt []byte) []byte { return keyAD(&j, salt) })
		switch {
		case errors.Is(err, identity.ErrWrongPassphrase):
			return nil, ErrWrongPassphrase
		case errors.Is(err, identity.ErrCorrupt):
			return nil, fmt.Errorf("%w: %s", ErrKeyCorrupt, path)
		case err != nil:
			return nil, err
		}
	}
	defer clear(raw)
	e, err := readEntity(raw)
	if err != nil || e.PrivateKey == nil || e.PrivateKey.Encrypted {
		return nil, fmt.Errorf("%w: secret key packets", ErrKeyCorrupt)
	}
	if fp := fmt.Sprintf("%X", e.PrimaryKey.Fingerprint); fp != j.Fingerprint {
		return nil, fmt.Errorf("%w: key %s does not match its fingerprint %s", ErrKeyCorrupt, fp, j.Fingerprint)
	}
	return &Key{e: e}, nil
}

func readEntity(raw []byte) (e *openpgp.Entity, err error) {
	defer func() {
		if v := recover(); v != nil {
			e, err = nil, fmt.Errorf("parser failure: %v", v)
		}
	}()
	return openpgp.ReadEntity(packet.NewReader(bytes.NewReader(raw)))
}
