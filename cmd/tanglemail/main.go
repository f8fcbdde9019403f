// Command tanglemail runs a tanglemail node and talks to it.
//
// With no arguments it runs a node (the "node" command). Every command has --help; every flag can also be
// set by an environment variable TANGLEMAIL_<FLAG> (upper case, '-' as '_') or by a "flag = value" line in
// the config file (default <data-dir>/tanglemail.conf). The command line wins over the environment, the
// environment over the config file.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func commands() []*command {
	return []*command{
		nodeCommand(),
		lightCommand(),
		initCommand(),
		addressCommand(),
		statusCommand(),
		peersCommand(),
		chatCommand(),
		contactsCommand(),
		devnetCommand(),
		walletCommand(),
		openpgpCommand(),
		inviteCommand(),
		storageCommand(),
		gatewayCommand(),
		joinCommand(),
		versionCommand(),
	}
}

func main() {
	env := &cmdEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, stop: stopOnSignal()}
	os.Exit(run(env, os.Args[1:]))
}

// stopOnSignal returns a channel closed on the first SIGINT or SIGTERM (commands then stop cleanly);
// a second signal exits at once.
func stopOnSignal() chan struct{} {
	stop := make(chan struct{})
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		close(stop)
		<-sig
		fmt.Fprintln(os.Stderr, "second signal: exiting now")
		os.Exit(1)
	}()
	return stop
}

// run dispatches args to a command and returns the process exit code: 0 success, 1 failure, 2 usage.
func run(env *cmdEnv, args []string) int {
	name := "node"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		printTopUsage(env.stdout)
		return 0
	} else if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		name, args = "version", args[1:]
	}
	if name == "help" {
		if len(args) == 0 {
			printTopUsage(env.stdout)
			return 0
		}
		name, args = args[0], []string{"--help"}
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == name {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(env.stderr, "tanglemail: unknown command %q\n\n", name)
		printTopUsage(env.stderr)
		return 2
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var opts any
	if cmd.flags != nil {
		opts = cmd.flags(fs, env.getenv)
	}
	if err := parseFlags(fs, args, env.getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(env.stdout, cmd, fs)
			return 0
		}
		fmt.Fprintf(env.stderr, "tanglemail %s: %v\n(see tanglemail %s --help)\n", cmd.name, err, cmd.name)
		return 2
	}
	if err := cmd.run(env, opts, fs.Args()); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(env.stderr, "tanglemail %s: %v\n(see tanglemail %s --help)\n", cmd.name, err, cmd.name)
			return 2
		}
		fmt.Fprintf(env.stderr, "tanglemail %s: %v\n", cmd.name, err)
		return 1
	}
	return 0
}

// usageError is an error in how a command was called (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func printTopUsage(w io.Writer) {
	fmt.Fprint(w, `tanglemail — end-to-end encrypted mail and chat over a peer-to-peer Tangle.

Usage: tanglemail [command] [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
With no command, tanglemail runs a node; "tanglemail --version" prints the version. "tanglemail <command> --help" describes a command and its
flags; every flag can also be set as TANGLEMAIL_<FLAG> in the environment or in the config file.
`)
}
