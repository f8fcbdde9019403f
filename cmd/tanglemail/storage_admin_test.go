package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
)

// TestStorageCommand: "tanglemail storage" against a real node run with --public: status, a grant
// (shown once, with the command the subscriber runs), --json, and the errors.
func TestStorageCommand(t *testing.T) {
	dir := t.TempDir()
	_, nodeOut := startNode(t, dir, "--public", "--storage-cap", "256MiB")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(nodeOut.String(), "public node (storage, publish and tips for light clients) with a 256MiB cap") {
		if time.Now().After(deadline) {
			t.Fatalf("node output:\n%s", nodeOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, errs := runCLI(t, nil, "storage", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "public node") || !strings.Contains(out, "of a 256.0 MiB cap") || !strings.Contains(out, "0 active") {
		t.Fatalf("storage status: exit %d: %s\n%s", code, errs, out)
	}
	code, out, errs = runCLI(t, nil, "storage", "grant", "--mib", "8", "--days", "3", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "tmg_") || !strings.Contains(out, "tanglemail light --provider /ip4/127.0.0.1/") {
		t.Fatalf("storage grant: exit %d: %s\n%s", code, errs, out)
	}
	code, out, errs = runCLI(t, nil, "storage", "status", "--json", "--data-dir", dir)
	var st api.StorageStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.Enabled || !st.Public || st.CapBytes != 256<<20 {
		t.Fatalf("storage status --json: exit %d: %s\n%s", code, errs, out)
	}
	if code, _, errs := runCLI(t, nil, "storage", "grant", "--mib", "0", "--data-dir", dir); code != 2 || !strings.Contains(errs, "--mib") {
		t.Fatalf("grant of 0 MiB: exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "storage", "frobnicate", "--data-dir", dir); code != 2 || !strings.Contains(errs, "status or grant") {
		t.Fatalf("unknown subcommand: exit %d: %s", code, errs)
	}
	// A node without --storage says so, and refuses grants.
	dir2 := t.TempDir()
	startNode(t, dir2)
	if code, out, _ := runCLI(t, nil, "storage", "--data-dir", dir2); code != 0 || !strings.Contains(out, "runs no storage provider") {
		t.Fatalf("status without storage: %d %s", code, out)
	}
	if code, _, errs := runCLI(t, nil, "storage", "grant", "--data-dir", dir2); code != 1 || !strings.Contains(errs, "--storage") {
		t.Fatalf("grant without storage: exit %d: %s", code, errs)
	}
}
