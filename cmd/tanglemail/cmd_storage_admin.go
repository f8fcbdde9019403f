package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/tanglemail/tanglemail/internal/api"
)

// The operator's side of "tanglemail storage" (the node's provider): status and grant. The storage
// command (cmd_storage.go) dispatches to them; they need only the data directory and --json.

// runStorageStatus prints the running node's storage provider (GET /api/storage).
func runStorageStatus(env *cmdEnv, f *apiFlags) error {
	var st api.StorageStatus
	if printed, err := apiGet(env, f, "/api/storage", &st); err != nil || printed {
		return err
	}
	printStorage(env.stdout, &st)
	return nil
}

// runStorageGrant issues a one-time grant token (POST /api/storage/grants) and prints it once, with the
// command the subscriber runs.
func runStorageGrant(env *cmdEnv, f *apiFlags, mib, days uint) error {
	if mib == 0 || days == 0 || mib > 1<<20 || days > 3650 {
		return usageError{"grant needs --mib 1..1048576 and --days 1..3650"}
	}
	var g api.StorageGrant
	if err := callAPI(env, f.dataDir, http.MethodPost, "/api/storage/grants", api.StorageGrantRequest{QuotaMiB: uint32(mib), Days: uint32(days)}, &g); err != nil {
		return err
	}
	if f.json {
		return json.NewEncoder(env.stdout).Encode(g)
	}
	fmt.Fprintf(env.stdout, "Grant for one subscription of %d MiB for %d days (shown only once):\n  %s\n", g.QuotaMiB, g.Days, g.Token)
	if g.Provider != "" {
		fmt.Fprintf(env.stdout, "The subscriber runs:\n  tanglemail light --provider %s --grant %s\n", g.Provider, g.Token)
	}
	return nil
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
