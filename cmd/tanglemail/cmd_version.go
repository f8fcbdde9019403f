package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/version"
)

type versionFlags struct {
	json bool
}

// versionJSON is what `tanglemail version --json` prints: the build, and the networks it can join.
type versionJSON struct {
	version.Info
	Network  string   `json:"network"`  // the default network
	Networks []string `json:"networks"` // every network this build knows
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version, commit, Go version, protocol version and network",
		about: `Prints which build of tanglemail this is: its version, the commit it was built from, the Go
toolchain and platform, the protocol version it speaks and the network it joins by default.
"tanglemail --version" prints the same. A running node shows its own in "tanglemail status".`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &versionFlags{}
			fs.BoolVar(&f.json, "json", false, "print JSON")
			return f
		},
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*versionFlags)
			if len(args) > 0 {
				return usageError{"version takes no arguments"}
			}
			if f.json {
				return json.NewEncoder(env.stdout).Encode(versionJSON{Info: version.Get(), Network: tangle.MainNet.Name, Networks: networkNames()})
			}
			printVersion(env.stdout, version.Get())
			return nil
		},
	}
}

// networkNames are the networks a node can join (--network); the first is the default.
func networkNames() []string { return []string{tangle.MainNet.Name, tangle.DevNet.Name} }

func printVersion(w io.Writer, v version.Info) {
	commit := v.Commit
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "tanglemail %s\n", v.Version)
	fmt.Fprintf(w, "commit     %s\n", commit)
	fmt.Fprintf(w, "go         %s %s\n", v.GoVersion, v.Platform)
	fmt.Fprintf(w, "protocol   %d\n", v.Protocol)
	names := networkNames()
	fmt.Fprintf(w, "network    %s (default; also: %s)\n", names[0], strings.Join(names[1:], ", "))
}
