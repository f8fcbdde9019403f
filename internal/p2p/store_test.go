package p2p

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

var _ testStore = (*dag.Store)(nil)

// openTestStore opens the real SQLite block store in the test's temporary directory; it is closed after
// the nodes (cleanups run last-registered first, and nodes are started after their store).
// P2P_TEST_MEMSTORE=1 substitutes the in-memory store (to tell network effects from store effects).
func openTestStore(t testing.TB, params tangle.Params) testStore {
	t.Helper()
	if os.Getenv("P2P_TEST_MEMSTORE") != "" {
		return newMemStore(params)
	}
	st, err := dag.Open(filepath.Join(t.TempDir(), "blocks.db"), params)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
