package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"rsc.io/qr"

	"github.com/tanglemail/tanglemail/internal/node"
)

type initFlags struct {
	commonFlags
	tagBits        int
	passphraseFile string
}

func initCommand() *command {
	return &command{
		name:    "init",
		summary: "create an identity (key pair and address) in the data directory",
		about: `Creates a new identity in the data directory and prints its address. The node does this by
itself on first start; init lets you choose the tag bits and a passphrase first.

Tag bits (0..16) are how many bits of your address's tag senders reveal on the blocks they send you.
More bits: your node trial-opens fewer blocks. Fewer bits: your blocks hide among more people's.
The default, 8, hides each of your blocks among 1/256 of all traffic.`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &initFlags{}
			f.register(fs, getenv)
			fs.IntVar(&f.tagBits, "tag-bits", 8, "tag bits your address reveals (0..16)")
			fs.StringVar(&f.passphraseFile, "passphrase-file", "", "file whose first line is the passphrase that encrypts the identity (default: unencrypted)")
			return f
		},
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*initFlags)
			if len(args) > 0 {
				return usageError{"init takes no arguments"}
			}
			if f.tagBits < 0 || f.tagBits > 16 {
				return usageError{fmt.Sprintf("--tag-bits %d: want 0..16", f.tagBits)}
			}
			pass, err := readPassphrase(f.passphraseFile)
			if err != nil {
				return err
			}
			id, err := node.CreateIdentity(f.dataDir, pass, f.tagBits)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "Created identity in %s\nYour address: %s\n", f.dataDir, id.Address().Mail())
			return nil
		},
	}
}

type addressFlags struct {
	commonFlags
	passphraseFile string
	qr             bool
	json           bool
}

func addressCommand() *command {
	return &command{
		name:    "address",
		summary: "print this node's address (with a QR code for phones)",
		about: `Prints the address people write to, as used in mail headers (<address>@tangle), and a QR code of
it in the terminal.`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &addressFlags{}
			f.register(fs, getenv)
			fs.StringVar(&f.passphraseFile, "passphrase-file", "", "file whose first line is the identity's passphrase")
			fs.BoolVar(&f.qr, "qr", true, "also print the address as a QR code")
			fs.BoolVar(&f.json, "json", false, "print JSON: {\"address\", \"mail\", \"tag_bits\"}")
			return f
		},
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*addressFlags)
			if len(args) > 0 {
				return usageError{"address takes no arguments"}
			}
			id, err := loadIdentity(f.dataDir, f.passphraseFile)
			if err != nil {
				return err
			}
			a := id.Address()
			if f.json {
				return json.NewEncoder(env.stdout).Encode(map[string]any{"address": a.String(), "mail": a.Mail(), "tag_bits": a.TagBits})
			}
			fmt.Fprintln(env.stdout, a.Mail())
			if f.qr {
				return printQR(env.stdout, a.Mail())
			}
			return nil
		},
	}
}

// printQR draws text as a QR code with half-block characters (two modules per character cell), light
// modules as full blocks so that it scans on a dark terminal.
func printQR(w io.Writer, text string) error {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return err
	}
	const quiet = 2
	n := code.Size
	black := func(x, y int) bool {
		return x >= 0 && y >= 0 && x < n && y < n && code.Black(x, y)
	}
	var sb strings.Builder
	for y := -quiet; y < n+quiet; y += 2 {
		for x := -quiet; x < n+quiet; x++ {
			top, bottom := black(x, y), black(x, y+1)
			switch {
			case top && bottom:
				sb.WriteRune(' ')
			case top:
				sb.WriteRune('▄')
			case bottom:
				sb.WriteRune('▀')
			default:
				sb.WriteRune('█')
			}
		}
		sb.WriteByte('\n')
	}
	_, err = io.WriteString(w, sb.String())
	return err
}
