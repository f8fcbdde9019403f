package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"

	"github.com/tanglemail/tanglemail/internal/api"
)

type contactsFlags struct {
	commonFlags
	json bool
}

func contactsCommand() *command {
	return &command{
		name:    "contacts",
		summary: "list, add and remove contacts (your petnames for addresses)",
		usage:   "[list | add <petname> <address> | remove <petname>]",
		about: `Manages the contacts of the node running on the data directory. A contact is a petname, a name only
you see, for an address: you can then write "bob" wherever an address goes (tanglemail chat bob, the To
of a mail), and bob's messages show as from "bob".

  tanglemail contacts                       list them (also: contacts list; --json for the node's JSON)
  tanglemail contacts add bob tm1…@tangle   add bob
  tanglemail contacts remove bob            remove bob

The node must be running: start it with "tanglemail".`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &contactsFlags{}
			f.register(fs, getenv)
			fs.BoolVar(&f.json, "json", false, "print the node's JSON answer (list, add)")
			return f
		},
		run: runContacts,
	}
}

func runContacts(env *cmdEnv, o any, args []string) error {
	f := o.(*contactsFlags)
	sub := "list"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list", "ls":
		if len(args) > 0 {
			return usageError{"contacts list takes no arguments"}
		}
	case "add":
		if len(args) != 2 {
			return usageError{"contacts add takes a petname and an address, e.g. tanglemail contacts add bob tm1…@tangle"}
		}
	case "remove", "rm", "delete":
		if len(args) != 1 {
			return usageError{"contacts remove takes one petname"}
		}
	default:
		return usageError{fmt.Sprintf("contacts: no subcommand %q (want list, add or remove)", sub)}
	}
	client, err := newAPIClient(env, f.dataDir)
	if err != nil {
		return err
	}
	ctx, cancel := env.context()
	defer cancel()
	w := env.stdout
	switch sub {
	case "add":
		pet, addr := args[0], args[1]
		var c api.Contact
		err := client.call(ctx, http.MethodPost, "/api/contacts", api.Contact{Petname: pet, Address: addr}, &c)
		switch apiStatus(err) {
		case 0:
		case http.StatusConflict:
			return fmt.Errorf("the petname %q is taken: choose another, or first remove the old one with `tanglemail contacts remove %s`", pet, pet)
		default:
			return fmt.Errorf("cannot add %q: %w", pet, err)
		}
		if err != nil {
			return err
		}
		if f.json {
			return json.NewEncoder(w).Encode(c)
		}
		fmt.Fprintf(w, "Added %s: %s\n", cleanLine(c.Petname), cleanLine(c.Address))
		return nil
	case "remove", "rm", "delete":
		pet := args[0]
		err := client.call(ctx, http.MethodDelete, "/api/contacts/"+url.PathEscape(pet), nil, nil)
		if apiStatus(err) == http.StatusNotFound {
			return fmt.Errorf("no contact named %q (list them with `tanglemail contacts`)", pet)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "Removed %s.\n", cleanLine(pet))
		return nil
	}
	if f.json {
		raw, err := client.raw(ctx, "/api/contacts")
		if err != nil {
			return err
		}
		_, err = w.Write(raw)
		return err
	}
	var list api.Contacts
	if err := client.call(ctx, http.MethodGet, "/api/contacts", nil, &list); err != nil {
		return err
	}
	if len(list.Contacts) == 0 {
		fmt.Fprintln(w, "No contacts yet. Add one with: tanglemail contacts add <petname> <address>")
		return nil
	}
	width := 0
	for _, c := range list.Contacts {
		width = max(width, len([]rune(cleanLine(c.Petname))))
	}
	for _, c := range list.Contacts {
		fmt.Fprintf(w, "%-*s  %s\n", width, cleanLine(c.Petname), cleanLine(c.Address))
	}
	return nil
}
