package version

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/tanglemail/tanglemail", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name            string
		bi              *debug.BuildInfo
		ldVer, ldCommit string
		version, commit string
		modified        bool
	}{
		{"no build info", nil, "", "", "devel", "unknown", false},
		{"buildvcs=false", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "", "", "devel", "unknown", false},
		{"git checkout", vcs, "", "", "devel", "0123456789abcdef0123456789abcdef01234567", true},
		{"go install @version", &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}}, "", "", "v0.2.0", "unknown", false},
		{"release (-ldflags -X)", vcs, "v0.3.0-2-gabcdef0", "abcdef0abcdef0abcdef0abcdef0abcdef0abcd", "v0.3.0-2-gabcdef0", "abcdef0abcdef0abcdef0abcdef0abcdef0abcd", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fromBuildInfo(tc.bi, tc.ldVer, tc.ldCommit)
			if got.Version != tc.version || got.Commit != tc.commit || got.Modified != tc.modified {
				t.Errorf("got version %q commit %q modified %v, want %q %q %v", got.Version, got.Commit, got.Modified, tc.version, tc.commit, tc.modified)
			}
			if got.Protocol != tangle.Version || got.Platform != runtime.GOOS+"/"+runtime.GOARCH || got.GoVersion == "" {
				t.Errorf("protocol %d platform %q go %q", got.Protocol, got.Platform, got.GoVersion)
			}
		})
	}
}

func TestString(t *testing.T) {
	i := Info{Version: "v1.0.0", Commit: "0123456789abcdef", Modified: true, GoVersion: "go1.26.8", Platform: "linux/amd64", Protocol: 1}
	want := "v1.0.0 (commit 0123456789ab, modified, go1.26.8 linux/amd64, protocol 1)"
	if got := i.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
