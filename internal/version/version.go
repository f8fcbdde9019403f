// Package version says which build of tanglemail is running: its version, the commit it was built from,
// the Go toolchain and platform, and the protocol version it speaks. `tanglemail version`, the node's
// status and its /metrics (tanglemail_build_info) show it.
//
// Where the figures come from, in order of preference:
//   - Release builds (scripts/release) set the version and commit with
//     -ldflags "-X github.com/tanglemail/tanglemail/internal/version.version=… -X ….commit=…" from
//     `git describe` and `git rev-parse`: they are built with -trimpath and -buildvcs=false, so that the
//     bytes depend on the commit only.
//   - Otherwise the Go build info: the module version for `go install …@v1.2.3`, and vcs.revision /
//     vcs.modified for a build in a git checkout with VCS stamping on (the go command's default).
//   - Otherwise "devel" and "unknown" (a test binary, or a build with -buildvcs=false such as .ci/run's).
//
// Get reads the build info once; it has no other state.
package version

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Set at link time by release builds (see the package comment). Empty otherwise.
var (
	version string
	commit  string
)

// Info describes a build.
type Info struct {
	Version   string `json:"version"`    // "v0.1.0", "v0.1.0-3-gabcdef0", or "devel"
	Commit    string `json:"commit"`     // full commit hash, or "unknown"
	Modified  bool   `json:"modified"`   // built from a work tree with uncommitted changes
	GoVersion string `json:"go_version"` // "go1.26.8"
	Platform  string `json:"platform"`   // GOOS/GOARCH
	// Protocol is the version of the block format (protocol.md §2) this build speaks.
	Protocol int `json:"protocol"`
}

var get = sync.OnceValue(func() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi, version, commit)
})

// Get returns this build's Info.
func Get() Info { return get() }

// fromBuildInfo builds an Info from the Go build info (nil if the binary has none) and the link-time
// values (empty if unset), which win.
func fromBuildInfo(bi *debug.BuildInfo, ldVersion, ldCommit string) Info {
	info := Info{
		Version:   "devel",
		Commit:    "unknown",
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Protocol:  tangle.Version,
	}
	if bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.modified":
				info.Modified, _ = strconv.ParseBool(s.Value)
			}
		}
	}
	if ldVersion != "" {
		info.Version = ldVersion
	}
	if ldCommit != "" {
		info.Commit = ldCommit
	}
	return info
}

// ShortCommit is the commit's first 12 hex digits, or the commit as it is if shorter ("unknown").
func (i Info) ShortCommit() string {
	if len(i.Commit) > 12 {
		return i.Commit[:12]
	}
	return i.Commit
}

// String is a one-line description: "v0.1.0 (commit 0123456789ab, go1.26.8 linux/amd64, protocol 1)".
func (i Info) String() string {
	c := i.ShortCommit()
	if i.Modified {
		c += ", modified"
	}
	return i.Version + " (commit " + c + ", " + i.GoVersion + " " + i.Platform + ", protocol " + strconv.Itoa(i.Protocol) + ")"
}
