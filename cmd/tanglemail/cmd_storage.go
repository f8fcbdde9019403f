package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/tanglemail/tanglemail/internal/api"
)

type storageFlags struct {
	apiFlags
	mib  uint
	days uint
}

func storageCommand() *command {
	return &command{
		name:    "storage",
		summary: "the running node's storage provider: status, grants",
		usage:   "[status | grant --mib N --days N]",
		about: `Administers the storage provider of the node running on the data directory (started with
"tanglemail node --storage", or --public to also serve light clients; docs/protocol.md §12).

  tanglemail storage [status]                 subscriptions, stored bytes, disk cap
  tanglemail storage grant --mib N --days N   issue a one-time grant token for one subscription of at most
                                              N MiB for N days; hand it to the subscriber, who passes it to
                                              "tanglemail light --grant" (it is shown only once)

A provider stores, for each subscription, the sealed blocks whose route tag matches the subscriber's tag
prefix: with 8 tag bits that is about 1/256 of all traffic, with 12 bits 1/4096. At the quota new blocks
are refused and stored ones are kept.`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &storageFlags{}
			f.register(fs, getenv)
			fs.BoolVar(&f.json, "json", false, "print the node's JSON answer unchanged")
			fs.UintVar(&f.mib, "mib", 64, "grant: the subscription's quota in MiB")
			fs.UintVar(&f.days, "days", 30, "grant: how many days the subscription stays active")
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
				var st api.StorageStatus
				if printed, err := apiGet(env, &f.apiFlags, "/api/storage", &st); err != nil || printed {
					return err
				}
				printStorage(env.stdout, &st)
				return nil
			case "grant":
				if f.mib == 0 || f.days == 0 || f.mib > 1<<20 || f.days > 3650 {
					return usageError{"grant needs --mib 1..1048576 and --days 1..3650"}
				}
				client, err := newAPIClient(env, f.dataDir)
				if err != nil {
					return err
				}
				ctx, cancel := env.context()
				defer cancel()
				var g api.StorageGrant
				if err := client.call(ctx, "POST", "/api/storage/grants", api.StorageGrantRequest{QuotaMiB: uint32(f.mib), Days: uint32(f.days)}, &g); err != nil {
					return err
				}
				if f.json {
					fmt.Fprintf(env.stdout, "{\"token\": %q, \"quota_mib\": %d, \"days\": %d, \"provider\": %q}\n", g.Token, g.QuotaMiB, g.Days, g.Provider)
					return nil
				}
				fmt.Fprintf(env.stdout, "Grant for one subscription of %d MiB for %d days (shown only once):\n  %s\n", g.QuotaMiB, g.Days, g.Token)
				if g.Provider != "" {
					fmt.Fprintf(env.stdout, "The subscriber runs:\n  tanglemail light --provider %s --grant %s\n", g.Provider, g.Token)
				}
				return nil
			}
			return usageError{fmt.Sprintf("unknown storage command %q: want status or grant", sub)}
		},
	}
}

func printStorage(w io.Writer, st *api.StorageStatus) {
	if !st.Enabled {
		fmt.Fprintln(w, "This node runs no storage provider (start it with --storage, or --public to serve light clients).")
		return
	}
	role := "storage provider"
	if st.Public {
		role = "public node (storage, publish and tips for light clients)"
	}
	fmt.Fprintf(w, "Role:           %s\n", role)
	fmt.Fprintf(w, "Subscriptions:  %d active, %d pending, %d expired\n", st.Active, st.Pending, st.Expired)
	fmt.Fprintf(w, "Stored:         %.1f MiB of a %.1f MiB cap (%.1f MiB committed to active quotas)\n",
		float64(st.StoredBytes)/(1<<20), float64(st.CapBytes)/(1<<20), float64(st.CommittedBytes)/(1<<20))
	for _, a := range st.Addrs {
		fmt.Fprintf(w, "Reach it at:    %s\n", a)
	}
}
