package node

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/identity"
)

// Files of a data directory. Key material and the password are written 0600 in a 0700 directory.
const (
	IdentityFile = "identity.key" // the user's identity (keystore format of package identity)
	PeerKeyFile  = "p2p.key"      // the libp2p host key
	BlocksFile   = "blocks.db"    // the DAG store
	MailFile     = "mail.db"      // the mailbox store (and mail.chunks.db, the inbox's chunk table)
	PasswordFile = "password"     // the generated password for the mail clients and the API
	APIFile      = "api.json"     // where the running node's API listens (written at start)
	SpoolDir     = "spool"        // large SMTP submissions while they are read (submission.Options.SpoolDir)
)

// APIInfo is the content of APIFile: how local tools reach the running node.
type APIInfo struct {
	URL string `json:"url"`
	PID int    `json:"pid"`
}

// ErrNoIdentity means the data directory has no identity yet.
var ErrNoIdentity = errors.New("no identity in the data directory (run tanglemail init, or start the node once)")

// EnsureDataDir creates dir with mode 0700 if it does not exist, and takes group and other access away
// from an existing one: it holds the keys.
func EnsureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, fi.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("restrict data directory %s to its owner: %w", dir, err)
		}
	}
	return nil
}

// LoadIdentity reads the identity from dir.
func LoadIdentity(dir string, passphrase []byte) (*identity.Identity, error) {
	id, err := identity.Load(filepath.Join(dir, IdentityFile), passphrase)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoIdentity
	}
	return id, err
}

// CreateIdentity makes a new identity with tagBits tag bits and saves it in dir. It refuses to overwrite.
func CreateIdentity(dir string, passphrase []byte, tagBits int) (*identity.Identity, error) {
	if err := EnsureDataDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, IdentityFile)
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s already exists: refusing to overwrite an identity", path)
	}
	id, err := identity.Generate(tagBits)
	if err != nil {
		return nil, err
	}
	if err := identity.Save(path, id, passphrase); err != nil {
		return nil, err
	}
	return id, nil
}

// LoadOrCreateIdentity loads the identity in dir, creating one on first start. created says which.
func LoadOrCreateIdentity(dir string, passphrase []byte, tagBits int) (id *identity.Identity, created bool, err error) {
	id, err = LoadIdentity(dir, passphrase)
	if errors.Is(err, ErrNoIdentity) {
		id, err = CreateIdentity(dir, passphrase, tagBits)
		return id, err == nil, err
	}
	return id, false, err
}

// LoadOrCreatePassword returns the node's password, generating a random one on first use.
func LoadOrCreatePassword(dir string) (string, error) {
	path := filepath.Join(dir, PasswordFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if pw := strings.TrimSpace(string(b)); pw != "" {
			return pw, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := rand.Text() // 26 base32 characters, 130 bits (crypto/rand)
	if err := atomicfile.Write(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write password: %w", err)
	}
	return pw, nil
}

// ReadAPIInfo reads where the node running on dir serves its API.
func ReadAPIInfo(dir string) (APIInfo, string, error) {
	var info APIInfo
	b, err := os.ReadFile(filepath.Join(dir, APIFile))
	if errors.Is(err, os.ErrNotExist) {
		return info, "", fmt.Errorf("no node is running on %s (start one with: tanglemail --data-dir %s)", dir, dir)
	}
	if err != nil {
		return info, "", err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, "", fmt.Errorf("%s: %w", APIFile, err)
	}
	pw, err := os.ReadFile(filepath.Join(dir, PasswordFile))
	if err != nil {
		return info, "", fmt.Errorf("read password: %w", err)
	}
	return info, strings.TrimSpace(string(pw)), nil
}
