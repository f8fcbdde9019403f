package node

import (
	"go/build"
	"path"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/tanglemail/tanglemail"

// TestEnginesMeetOnlyInNode checks the layering rule of HACKING.md: no engine (outbox, inbox, chat)
// imports another, directly or through any other package of the module; they meet only in node.
func TestEnginesMeetOnlyInNode(t *testing.T) {
	engines := []string{"internal/outbox", "internal/inbox", "internal/chat", "internal/light", "internal/storage", "internal/payment", "internal/blob", "internal/gateway"}
	for _, e := range engines {
		deps := map[string]bool{}
		var walk func(rel string)
		walk = func(rel string) {
			pkg, err := build.ImportDir(path.Join("../..", rel), 0)
			if err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
			for _, imp := range pkg.Imports {
				sub, ok := strings.CutPrefix(imp, modulePath+"/")
				if !ok || deps[sub] {
					continue
				}
				deps[sub] = true
				walk(sub)
			}
		}
		walk(e)
		for _, other := range engines {
			if other != e && deps[other] {
				t.Errorf("%s imports %s (directly or not); engines meet only in node", e, other)
			}
		}
		if deps["internal/node"] {
			t.Errorf("%s imports internal/node", e)
		}
	}
	// The walk must see the module's packages at all, or the test could not fail.
	pkg, err := build.ImportDir("../inbox", 0)
	if err != nil || !slices.Contains(pkg.Imports, modulePath+"/internal/store") {
		t.Fatalf("inbox's imports %v (%v) do not include the store", pkg.Imports, err)
	}
}
