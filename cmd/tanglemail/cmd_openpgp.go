package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/pgp"
	"github.com/tanglemail/tanglemail/internal/pgp/wkd"
)

type openpgpFlags struct {
	commonFlags
	passphraseFile string
	address        string
	export         bool
	json           bool
}

func openpgpCommand() *command {
	return &command{
		name:    "openpgp",
		summary: "show (creating it on first use) the OpenPGP key of your Internet address",
		about: `Shows the OpenPGP key that end-to-end encrypts your Internet mail with OpenPGP users (docs/protocol.md
§16): its address, fingerprint and where a Web Key Directory serves it. The key is made on first use
for --internet-address (your address on a gateway) and kept in the data directory (openpgp.key),
encrypted under the identity's passphrase (--passphrase-file). --export prints the public key,
ASCII-armored, for correspondents (gpg --import) or your domain's Web Key Directory (there in binary:
gpg --dearmor).`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &openpgpFlags{}
			f.commonFlags.register(fs, getenv)
			fs.StringVar(&f.passphraseFile, "passphrase-file", "", "file whose first line is the identity's passphrase (it also encrypts the OpenPGP key)")
			fs.StringVar(&f.address, "internet-address", "", "your Internet address (name@domain), for a new key; an existing key must be for it")
			fs.BoolVar(&f.export, "export", false, "print the public key, ASCII-armored, and nothing else")
			fs.BoolVar(&f.json, "json", false, "print JSON: {\"address\", \"fingerprint\", \"wkd_advanced\", \"wkd_direct\", \"public_key\"}")
			return f
		},
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*openpgpFlags)
			if len(args) > 0 {
				return usageError{"openpgp takes no arguments"}
			}
			pass, err := readPassphrase(f.passphraseFile)
			if err != nil {
				return err
			}
			path := filepath.Join(f.dataDir, pgp.KeyFile)
			k, err := pgp.LoadKey(path, pass)
			created := false
			if errors.Is(err, os.ErrNotExist) {
				if f.address == "" {
					return usageError{"no OpenPGP key yet: give --internet-address name@domain (your Internet address) to make one"}
				}
				if err := node.EnsureDataDir(f.dataDir); err != nil {
					return err
				}
				k, err = pgp.CreateKey(path, f.address, pass)
				created = err == nil
			}
			if err != nil {
				return err
			}
			addrs := k.Public().Addresses()
			if f.address != "" && !k.Public().HasAddress(f.address) {
				return fmt.Errorf("the OpenPGP key in %s is for %s, not %s", path, strings.Join(addrs, ", "), f.address)
			}
			addr := f.address
			if addr == "" && len(addrs) > 0 {
				addr = addrs[0]
			}
			if f.export {
				_, err := fmt.Fprint(env.stdout, k.Public().Armored())
				return err
			}
			adv, dir, err := wkd.URLs(addr)
			if err != nil {
				return err
			}
			if f.json {
				return json.NewEncoder(env.stdout).Encode(map[string]string{"address": addr, "fingerprint": k.Fingerprint(),
					"wkd_advanced": adv, "wkd_direct": dir, "public_key": k.Public().Armored()})
			}
			if created {
				fmt.Fprintf(env.stdout, "created a new OpenPGP key in %s\n", path)
			}
			fmt.Fprintf(env.stdout, "address:     %s\nfingerprint: %s\nWKD:         %s\n             (or %s)\n", addr, k.Fingerprint(), adv, dir)
			fmt.Fprintln(env.stdout, "Print the public key with --export.")
			return nil
		},
	}
}
