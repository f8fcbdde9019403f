package main

import (
	"flag"
	"fmt"
)

type storageFlags struct {
	apiFlags
	mib  uint
	days uint
	sub  subscribeFlags // subscribe's own flags (cmd_storage_subscribe.go)
}

// storageCommand is "tanglemail storage": the operator's subcommands status and grant
// (cmd_storage_admin.go). The payments branch adds "subscribe" (a subscriber's): merged, one storage
// command dispatches all three, status and grant to runStorageStatus and runStorageGrant.
func storageCommand() *command {
	return &command{
		name:    "storage",
		summary: "the running node's storage provider (status, grants); subscribe: pay a provider to keep your mail",
		usage:   "[status | grant --mib N --days N | subscribe --provider <multiaddr> --mib N --days N --rpc <url> | subscriptions [--rpc <url>]]",
		about: `Administers the storage provider of the node running on the data directory (started with
"tanglemail node --storage", or --public to also serve light clients; docs/protocol.md §12).

  tanglemail storage [status]                 subscriptions, stored bytes, disk cap
  tanglemail storage grant --mib N --days N   issue a one-time grant token for one subscription of at most
                                              N MiB for N days; hand it to the subscriber, who passes it to
                                              "tanglemail light --grant" (it is shown only once)

A provider stores, for each subscription, the sealed blocks whose route tag matches the subscriber's tag
prefix: with 8 tag bits that is about 1/256 of all traffic, with 12 bits 1/4096. At the quota new blocks
are refused and stored ones are kept.

  tanglemail storage subscribe --provider <multiaddr> --mib N --days N --rpc <url> [--yes]
      asks a provider for a quote, shows the cost, asks to confirm (--yes for scripts), pays from your
      wallet (tanglemail wallet), shows progress until the provider has verified the payment on chain,
      and the subscription is active (docs/protocol.md §14). Run it again with the same provider to renew
      (the period is extended by --days) or, with a larger --mib, to top up the quota. Paying the same
      quote again never pays twice. The subscription is kept in <data-dir>/light.db, where
      "tanglemail light" finds it (no --provider needed).

  tanglemail storage subscriptions [--rpc <url>] [--json]
      your subscriptions as their providers report them: state, usage, quota, paid until; with --rpc
      also your wallet's balance.`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &storageFlags{}
			f.register(fs, getenv)
			fs.BoolVar(&f.json, "json", false, "print the node's JSON answer unchanged")
			fs.UintVar(&f.mib, "mib", 64, "grant: the subscription's quota in MiB")
			fs.UintVar(&f.days, "days", 30, "grant: how many days the subscription stays active")
			f.sub.registerSubscribe(fs)
			return f
		},
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*storageFlags)
			sub := "status"
			if len(args) > 0 {
				sub, args = args[0], args[1:]
			}
			if len(args) > 0 {
				return usageError{fmt.Sprintf("storage %s takes no further arguments", sub)}
			}
			switch sub {
			case "status":
				return runStorageStatus(env, &f.apiFlags)
			case "grant":
				return runStorageGrant(env, &f.apiFlags, f.mib, f.days)
			case "subscribe":
				f.sub.commonFlags, f.sub.mib, f.sub.days = f.commonFlags, f.mib, f.days
				return runSubscribe(env, &f.sub, nil)
			case "subscriptions":
				f.sub.commonFlags = f.commonFlags
				return runSubscriptions(env, &f.sub, f.json)
			}
			return usageError{fmt.Sprintf("unknown storage command %q: want status or grant (subscriber: subscribe, subscriptions)", sub)}
		},
	}
}
