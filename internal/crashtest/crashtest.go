// Package crashtest starts the running test binary again as a child process, for tests that kill a
// process with SIGKILL at random moments and check that nothing acknowledged was lost (the node's crash
// test in cmd/tanglemail, the storage provider's in internal/storage). Only tests import it.
//
// The child is the same binary (os.Args[0]); the caller's TestMain or a test function that the child is
// told to run (-test.run) recognises it by an environment variable and plays its part, printing what the
// parent waits for on stdout. The child's stderr is the test's.
package crashtest

import (
	"io"
	"os"
	"os/exec"
	"testing"
)

// Start runs the test binary with args and the test's environment plus env ("NAME=value" entries) and
// returns the started command and its stdout. It fails t if the child cannot be started.
func Start(t testing.TB, env []string, args ...string) (*exec.Cmd, io.ReadCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}
