package identity

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"golang.org/x/crypto/chacha20poly1305"
)

// Keystore errors. Load wraps ErrCorrupt for every malformed file; none of them carries key material.
var (
	ErrWrongPassphrase     = errors.New("identity: wrong passphrase (or the key file was altered)")
	ErrPassphraseRequired  = errors.New("identity: key file is passphrase-protected")
	ErrCorrupt             = errors.New("identity: corrupt key file")
	ErrInsecurePermissions = errors.New("identity: key file is accessible by group or others (chmod 600 it)")
)

const (
	keystoreFormat  = "tanglemail-identity"
	keystoreVersion = 1
	kdfName         = "argon2id"
	cipherName      = "xchacha20-poly1305"
	keystoreAAD     = "tanglemail/v1/keystore"
	saltSize        = 16

	// Bounds Load accepts, so a hostile file cannot make it allocate or compute without limit.
	maxArgonTime    = 64
	maxArgonMemory  = 4 << 20 // KiB = 4 GiB
	minArgonMemory  = 8       // KiB, argon2's own floor is 8·threads
	maxArgonThreads = 64
)

// kdfParams are the argon2id cost parameters (RFC 9106).
type kdfParams = KDFParams

// argonParams are the parameters Save uses: time 3, 64 MiB, 4 lanes (RFC 9106 §4, second recommended
// option). Tests lower them through this variable to stay fast.
var argonParams = kdfParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

type keyFile struct {
	Format     string   `json:"format"`
	Version    int      `json:"version"`
	TagBits    int      `json:"tag_bits"`
	PublicKey  string   `json:"public_key"`
	Seed       string   `json:"seed,omitempty"`
	KDF        *kdfJSON `json:"kdf,omitempty"`
	Cipher     string   `json:"cipher,omitempty"`
	Nonce      string   `json:"nonce,omitempty"`
	SealedSeed string   `json:"sealed_seed,omitempty"`
}

type kdfJSON struct {
	Name      string `json:"name"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      string `json:"salt"`
}

// Save writes id to path, encrypted under passphrase when it is not empty (format in the package
// comment). The file is created with mode 0600 and replaces any existing file atomically: it is written
// to a temporary file in the same directory, synced, renamed over path, and the directory is synced.
func Save(path string, id *Identity, passphrase []byte) error {
	if id == nil {
		return errors.New("identity: Save of a nil identity")
	}
	data, err := marshalKeyFile(id, passphrase, argonParams)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		if errors.Is(err, atomicfile.ErrMode) {
			return fmt.Errorf("%w: %v", ErrInsecurePermissions, err)
		}
		return err
	}
	return nil
}

func marshalKeyFile(id *Identity, passphrase []byte, p kdfParams) ([]byte, error) {
	kf := keyFile{
		Format:    keystoreFormat,
		Version:   keystoreVersion,
		TagBits:   id.TagBits(),
		PublicKey: hex.EncodeToString(id.addr.Key),
	}
	seed := id.priv.Seed() // a view of id's key; not modified
	if len(passphrase) == 0 {
		kf.Seed = hex.EncodeToString(seed)
	} else {
		salt, nonce, sealed, err := SealWithPassphrase(passphrase, seed, p, func(salt []byte) []byte { return keystoreAD(&kf, p, salt) })
		if err != nil {
			return nil, err
		}
		k := kdfJSON{Name: kdfName, Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads, Salt: hex.EncodeToString(salt)}
		kf.KDF = &k
		kf.Cipher = cipherName
		kf.Nonce = hex.EncodeToString(nonce)
		kf.SealedSeed = hex.EncodeToString(sealed)
	}
	out, err := json.MarshalIndent(&kf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// keystoreAD is the associated data that binds the file's public fields to the sealed seed.
func keystoreAD(kf *keyFile, p kdfParams, salt []byte) []byte {
	pub, _ := hex.DecodeString(kf.PublicKey)
	ad := make([]byte, 0, len(keystoreAAD)+2+len(pub)+9+len(salt))
	ad = append(ad, keystoreAAD...)
	ad = append(ad, byte(kf.Version), byte(kf.TagBits))
	ad = append(ad, pub...)
	ad = binary.LittleEndian.AppendUint32(ad, p.Time)
	ad = binary.LittleEndian.AppendUint32(ad, p.MemoryKiB)
	ad = append(ad, p.Threads)
	ad = append(ad, salt...)
	return ad
}

// Load reads an identity saved by Save. An encrypted file needs its passphrase: none gives
// ErrPassphraseRequired, a wrong one ErrWrongPassphrase. An unencrypted file ignores passphrase. A
// malformed file gives an error wrapping ErrCorrupt; a file that group or others may access gives
// ErrInsecurePermissions (not checked on Windows).
func Load(path string, passphrase []byte) (*Identity, error) {
	data, err := ReadPrivateFile(path, 64<<10)
	if err != nil {
		return nil, err
	}
	id, err := unmarshalKeyFile(data, passphrase)
	clear(data)
	return id, err
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func unmarshalKeyFile(data, passphrase []byte) (*Identity, error) {
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, corrupt("not a key file (%s)", jsonErrorKind(err))
	}
	if dec.More() {
		return nil, corrupt("trailing data after the JSON object")
	}
	if kf.Format != keystoreFormat {
		return nil, corrupt("format is not %q", keystoreFormat)
	}
	if kf.Version != keystoreVersion {
		return nil, corrupt("unsupported version %d", kf.Version)
	}
	if err := checkTagBits(kf.TagBits); err != nil {
		return nil, corrupt("tag_bits %d out of range", kf.TagBits)
	}
	pub, err := hex.DecodeString(kf.PublicKey)
	if err != nil || len(pub) != PublicKeySize {
		return nil, corrupt("public_key is not %d hex bytes", PublicKeySize)
	}

	var seed []byte
	encrypted := kf.KDF != nil || kf.Cipher != "" || kf.Nonce != "" || kf.SealedSeed != ""
	switch {
	case encrypted && kf.Seed != "":
		return nil, corrupt("both seed and sealed_seed present")
	case !encrypted:
		seed, err = hex.DecodeString(kf.Seed)
		if err != nil || len(seed) != SeedSize {
			clear(seed)
			return nil, corrupt("seed is not %d hex bytes", SeedSize)
		}
	default:
		if kf.KDF == nil || kf.KDF.Name != kdfName {
			return nil, corrupt("kdf is not %s", kdfName)
		}
		if kf.Cipher != cipherName {
			return nil, corrupt("cipher is not %s", cipherName)
		}
		p := kdfParams{Time: kf.KDF.Time, MemoryKiB: kf.KDF.MemoryKiB, Threads: kf.KDF.Threads}
		if !p.Valid() {
			return nil, corrupt("argon2id parameters out of range")
		}
		salt, err := hex.DecodeString(kf.KDF.Salt)
		if err != nil || len(salt) < 8 || len(salt) > 64 {
			return nil, corrupt("salt is not 8..64 hex bytes")
		}
		nonce, err := hex.DecodeString(kf.Nonce)
		if err != nil || len(nonce) != chacha20poly1305.NonceSizeX {
			return nil, corrupt("nonce is not %d hex bytes", chacha20poly1305.NonceSizeX)
		}
		sealed, err := hex.DecodeString(kf.SealedSeed)
		if err != nil || len(sealed) != SeedSize+chacha20poly1305.Overhead {
			return nil, corrupt("sealed_seed is not %d hex bytes", SeedSize+chacha20poly1305.Overhead)
		}
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		seed, err = OpenWithPassphrase(passphrase, salt, nonce, sealed, keystoreAD(&kf, p, salt), p)
		if err != nil {
			return nil, err
		}
	}
	id, err := FromSeed(seed, kf.TagBits)
	clear(seed)
	if err != nil {
		return nil, corrupt("%v", err)
	}
	if !bytes.Equal(id.addr.Key, pub) {
		return nil, corrupt("seed does not match public_key")
	}
	return id, nil
}

// jsonErrorKind describes a JSON error without quoting file content.
func jsonErrorKind(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("JSON syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	default:
		return "invalid JSON"
	}
}
