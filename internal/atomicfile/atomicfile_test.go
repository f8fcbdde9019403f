package atomicfile

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// entries lists dir's names, to check that no temporary file is left behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestWriteContentAndReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := Write(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Fatalf("content %q, want first", got)
	}
	big := bytes.Repeat([]byte("0123456789"), 100_000)
	if err := Write(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, big) {
		t.Fatalf("replaced content has %d bytes, want %d", len(got), len(big))
	}
	if names := entries(t, dir); len(names) != 1 || names[0] != "key" {
		t.Fatalf("directory holds %v, want only key", names)
	}
}

func TestWritePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("permissions are not enforced on Windows")
	}
	dir := t.TempDir()
	for _, perm := range []fs.FileMode{0o600, 0o644, 0o400} {
		path := filepath.Join(dir, "f"+perm.String())
		// A file that exists with wide permissions is replaced by one with exactly perm.
		if err := os.WriteFile(path, []byte("old"), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := Write(path, []byte("new"), perm); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != perm {
			t.Errorf("mode %v, want %v", st.Mode().Perm(), perm)
		}
	}
}

func TestWriteFailureLeavesNoPartialFile(t *testing.T) {
	dir := t.TempDir()
	// The destination is a non-empty directory: the rename fails after the data was written.
	path := filepath.Join(dir, "dest")
	if err := os.MkdirAll(filepath.Join(path, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("secret"), 0o600); err == nil {
		t.Fatal("Write over a non-empty directory succeeded")
	}
	if names := entries(t, dir); len(names) != 1 || names[0] != "dest" {
		t.Fatalf("after a failed Write the directory holds %v, want only dest", names)
	}
	// A missing directory fails at once and creates nothing.
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
	// A failure keeps the old content whole.
	keep := filepath.Join(dir, "keep")
	if err := Write(keep, []byte("old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && os.Getuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil { // no new entries: CreateTemp fails
			t.Fatal(err)
		}
		err := Write(keep, []byte("new"), 0o600)
		os.Chmod(dir, 0o700)
		if err == nil {
			t.Fatal("Write into a read-only directory succeeded")
		}
		if got, _ := os.ReadFile(keep); string(got) != "old content" {
			t.Fatalf("after a failed Write the file holds %q", got)
		}
	}
	for _, n := range entries(t, dir) {
		if strings.Contains(n, ".tmp-") {
			t.Fatalf("temporary file %s left behind", n)
		}
	}
}
