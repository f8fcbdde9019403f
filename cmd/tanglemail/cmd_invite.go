package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/invite"
)

type inviteFlags struct {
	commonFlags
	name string
	qr   bool
	json bool
}

func inviteCommand() *command {
	return &command{
		name:    "invite",
		summary: "show an invite (link and QR code) that lets a friend join the network through your node",
		about: `Prints your node's invite: a tanglemail:invite?… link, and its QR code, that carries your address and
the network addresses (IP addresses and ports) at which your node can be reached. A friend who runs
"tanglemail join <invite>" connects to your node, and through it to the rest of the network, and gets
you as a contact. The invite reveals your node's network addresses to whoever sees it: share it only
with people you want to reach you. The format is in docs/protocol.md §11.

The node must be running: start it with "tanglemail".`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &inviteFlags{}
			f.register(fs, getenv)
			fs.StringVar(&f.name, "name", "", "the petname you suggest for yourself (your friend may choose another)")
			fs.BoolVar(&f.qr, "qr", true, "also print the invite as a QR code")
			fs.BoolVar(&f.json, "json", false, "print the node's JSON answer")
			return f
		},
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*inviteFlags)
			if len(args) > 0 {
				return usageError{"invite takes no arguments (a suggested name goes in --name)"}
			}
			var inv api.Invite
			if err := callAPI(env, f.dataDir, http.MethodGet, "/api/invite?name="+url.QueryEscape(f.name), nil, &inv); err != nil {
				return err
			}
			if f.json {
				return json.NewEncoder(env.stdout).Encode(inv)
			}
			w := env.stdout
			fmt.Fprintf(w, "Before you share it: %s\n\n", inv.Reveals)
			fmt.Fprintf(w, "Your invite (%s):\n\n%s\n\n", cleanLine(inv.Address), cleanLine(inv.Invite))
			if f.qr {
				if err := printQR(w, inv.Invite); err != nil {
					return err
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "Your friend joins with:\n  tanglemail join '%s'\n", cleanLine(inv.Invite))
			return nil
		},
	}
}

type joinFlags struct {
	commonFlags
	petname string
	json    bool
}

func joinCommand() *command {
	return &command{
		name:    "join",
		summary: "join the network by a friend's invite, and add the friend as a contact",
		usage:   "<invite> [petname]",
		about: `Joins the network through the node of a friend who gave you an invite ("tanglemail invite" on their
node prints it): your node dials the invite's network addresses, and once one answers it adds your friend
as a contact — under the petname you give, else the one the invite suggests. From then on your node
remembers that peer, re-dials it, and finds more peers through it (the DHT, and the addresses peers tell
each other), so you need an invite only once.

Quote the invite: it contains & and ?, which the shell would take.

  tanglemail join 'tanglemail:invite?v=1&net=tanglemail&to=tm1…@tangle&peer=12D3…&addr=/ip4/…'
  tanglemail join '<invite>' bob      add the friend as "bob"

The node must be running: start it with "tanglemail".`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &joinFlags{}
			f.register(fs, getenv)
			fs.StringVar(&f.petname, "petname", "", "the petname for your friend (also the second argument)")
			fs.BoolVar(&f.json, "json", false, "print the node's JSON answer")
			return f
		},
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*joinFlags)
			switch {
			case len(args) == 0:
				return usageError{"join takes an invite: tanglemail join '<invite>' (ask a friend to run tanglemail invite)"}
			case len(args) > 2:
				return usageError{"join takes an invite and an optional petname; quote the invite: tanglemail join '<invite>' [petname]"}
			case len(args) == 2 && f.petname != "" && f.petname != args[1]:
				return usageError{"give the petname once: as the second argument or with --petname"}
			case len(args) == 2:
				f.petname = args[1]
			}
			// Parse here too, so that a mangled invite (unquoted in the shell, say) gets a clear error
			// without a node.
			if _, err := invite.Parse(args[0]); err != nil {
				if !strings.Contains(args[0], "&") && strings.HasPrefix(strings.ToLower(args[0]), invite.Prefix) {
					return fmt.Errorf("%w\n(the invite was cut at its first &: put it in single quotes)", err)
				}
				return err
			}
			var res api.Joined
			err := callAPI(env, f.dataDir, http.MethodPost, "/api/join", api.Join{Invite: args[0], Petname: f.petname}, &res)
			if apiStatus(err) == http.StatusConflict {
				return fmt.Errorf("%w\n(the peers are connected; choose another petname: tanglemail join '<invite>' <petname>)", err)
			}
			if err != nil {
				return err
			}
			if f.json {
				return json.NewEncoder(env.stdout).Encode(res)
			}
			w := env.stdout
			fmt.Fprintf(w, "Joined network %s: connected to %d of %d of the invite's addresses.\n",
				res.Network, len(res.Connected), len(res.Connected)+len(res.Failed))
			for _, fl := range res.Failed {
				fmt.Fprintf(w, "  not reached: %s (%s)\n", cleanLine(fl.Addr), cleanLine(fl.Error))
			}
			if res.ContactAdded {
				fmt.Fprintf(w, "Added contact %s: %s\n", cleanLine(res.Contact.Petname), cleanLine(res.Contact.Address))
			} else {
				fmt.Fprintf(w, "Already a contact: %s: %s\n", cleanLine(res.Contact.Petname), cleanLine(res.Contact.Address))
			}
			fmt.Fprintf(w, "Write to them (\"tanglemail chat %s\", or mail to %s); your node now finds more peers through theirs.\n",
				cleanLine(res.Contact.Petname), cleanLine(res.Contact.Address))
			return nil
		},
	}
}
