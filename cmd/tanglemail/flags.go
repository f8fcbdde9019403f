package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/node"
)

// command is one subcommand: its flag set, a one-line summary, a longer description, and the function
// that runs it.
type command struct {
	name    string
	summary string
	usage   string // arguments after the flags, e.g. "<address>"
	about   string
	flags   func(fs *flag.FlagSet, getenv func(string) string) any
	run     func(env *cmdEnv, opts any, args []string) error
}

// cmdEnv is what a command may use of the process: streams, environment, and a stop channel. A nil
// stdin reads as empty.
type cmdEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	stop           <-chan struct{}
}

// context returns a context that ends when the command is asked to stop (SIGINT, SIGTERM) or cancel
// is called.
func (env *cmdEnv) context() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-env.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// envName is the environment variable that sets a flag: TANGLEMAIL_ + upper-case name, '-' as '_'.
func envName(flagName string) string {
	return "TANGLEMAIL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args into fs, then fills every flag not given on the command line from, in order,
// the environment (TANGLEMAIL_<NAME>) and the config file (name = value lines). The config file is the
// value of the "config" flag if the set has one, else none. Flags may follow arguments
// ("contacts list --json"); "--" ends the flags. fs.Args() are the arguments afterwards.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %v", envName(f.Name), v, err))
			}
			set[f.Name] = true
		}
	})
	path, explicit := "", false
	if cf := fs.Lookup("config"); cf != nil {
		path, explicit = cf.Value.String(), cf.Value.String() != ""
		if dd := fs.Lookup("data-dir"); dd != nil && path == "" {
			path = filepath.Join(dd.Value.String(), "tanglemail.conf")
		}
	}
	if path != "" {
		values, err := readConfigFile(path)
		if err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
			// A config file named explicitly must exist; the default one may be absent.
			errs = append(errs, err)
		}
		names := make([]string, 0, len(values))
		for k := range values {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, name := range names {
			f := fs.Lookup(name)
			if f == nil || name == "config" {
				errs = append(errs, fmt.Errorf("config file %s: unknown setting %q (see --help)", path, name))
				continue
			}
			if set[name] {
				continue
			}
			if err := f.Value.Set(values[name]); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: %s = %q: %v", path, name, values[name], err))
			}
		}
	}
	return errors.Join(errs...)
}

// parseInterspersed parses the flags among args, wherever they are, and leaves the other arguments, in
// order, in fs.Args().
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if endedByDashes(fs, args[:len(args)-len(rest)]) {
			positional = append(positional, rest...)
			break
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
	// A "--" first makes Parse set no flag and leave exactly the positional arguments.
	return fs.Parse(append([]string{"--"}, positional...))
}

// endedByDashes reports whether fs.Parse stopped at a "--" in consumed (the arguments it parsed), as
// opposed to a "--" that was the value of a flag ("--data-dir --").
func endedByDashes(fs *flag.FlagSet, consumed []string) bool {
	for i := 0; i < len(consumed); i++ {
		a := consumed[i]
		if a == "--" {
			return true
		}
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				i++ // the next argument is the flag's value
			}
		}
	}
	return false
}

// readConfigFile reads "name = value" lines; '#' starts a comment; values may be double-quoted.
func readConfigFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, value, ok := strings.Cut(text, "=")
		if !ok {
			return nil, fmt.Errorf("config file %s:%d: want name = value", path, line)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		out[name] = value
	}
	return out, sc.Err()
}

// listFlag is a repeatable, comma-separated string list flag. The first Set replaces the default; later
// ones (the flag given again) append.
type listFlag struct {
	values []string
	set    bool
}

func newListFlag(defaults ...string) *listFlag { return &listFlag{values: defaults} }

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.values, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		l.values, l.set = nil, true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l.values = append(l.values, s)
		}
	}
	return nil
}

// defaultDataDir is $XDG_DATA_HOME/tanglemail or ~/.local/share/tanglemail.
func defaultDataDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "tanglemail")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "tanglemail")
	}
	return "tanglemail-data"
}

// commonFlags are the flags every command that touches a node's data shares.
type commonFlags struct {
	dataDir string
	config  string
}

func (c *commonFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	dd := defaultDataDir(getenv)
	fs.StringVar(&c.dataDir, "data-dir", dd, "directory for the identity, block store and mailboxes")
	fs.StringVar(&c.config, "config", "", "config file of name = value lines (default <data-dir>/tanglemail.conf)")
}

// printUsage writes a command's help: summary, usage line, description, and flags with their
// environment variables.
func printUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "tanglemail %s — %s\n\nUsage: tanglemail %s [flags] %s\n", c.name, c.summary, c.name, c.usage)
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.about))
	}
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if !has {
		return
	}
	fmt.Fprintf(w, "\nFlags (each also settable as environment variable or config-file line):\n")
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s\n      %s%s\n      env %s, config: %s = …\n", f.Name, f.Usage, def, envName(f.Name), f.Name)
	})
}

// loadIdentity loads the identity in dataDir, unlocked with the first line of passphraseFile (if any).
func loadIdentity(dataDir, passphraseFile string) (*identity.Identity, error) {
	pass, err := readPassphrase(passphraseFile)
	if err != nil {
		return nil, err
	}
	return node.LoadIdentity(dataDir, pass)
}

// readPassphrase reads the first line of path; no path means no passphrase.
func readPassphrase(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return []byte(strings.TrimRight(line, "\r")), nil
}
