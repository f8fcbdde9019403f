package submission

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// SpoolThreshold is the size from which DATA is spooled to a file (Options.SpoolDir) instead of
// being held in memory: larger messages are read into a file and filed from it, so the node never
// holds a large message whole. Smaller ones are read into memory as before.
const SpoolThreshold = 1 << 20

// spoolPrefix names spool files: <SpoolDir>/data-<random>.eml.
const spoolPrefix = "data-"

// cleanSpool creates dir (0700) and removes the spool files a killed process left: their messages
// were never acknowledged (250 comes only after the store has them), so their clients still hold
// them and will send them again.
func cleanSpool(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("submission: spool: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("submission: spool: %w", err)
	}
	for _, e := range ents {
		if ok, _ := filepath.Match(spoolPrefix+"*", e.Name()); ok && !e.IsDir() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("submission: spool: %w", err)
			}
		}
	}
	return nil
}

// spooled is a message spooled to a file: head holds its first bytes (at least its header section),
// f all of it.
type spooled struct {
	f    *os.File
	head []byte
	size int64
}

// errSpoolWrite is a failure to write the spool file (not the client's fault: 451).
var errSpoolWrite = errors.New("submission: writing the spool file failed")

// spool writes head and the rest of r (at most limit bytes in all, then one more to tell an oversized
// message) to a new file in dir (0600) and syncs it. The caller closes and removes the file
// (release). An error from r is returned as it is; a failure of the file is errSpoolWrite.
func spool(dir string, head []byte, r io.Reader, limit int64) (*spooled, error) {
	f, err := os.CreateTemp(dir, spoolPrefix+"*.eml")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSpoolWrite, err)
	}
	sp := &spooled{f: f, head: head}
	if _, err := f.Write(head); err != nil {
		sp.release()
		return nil, fmt.Errorf("%w: %v", errSpoolWrite, err)
	}
	n, err := io.Copy(spoolWriter{f}, io.LimitReader(r, limit+1-int64(len(head))))
	sp.size = int64(len(head)) + n
	if err != nil {
		sp.release()
		var we *writeError
		if errors.As(err, &we) {
			return nil, fmt.Errorf("%w: %v", errSpoolWrite, err)
		}
		return nil, err
	}
	if err := f.Sync(); err != nil {
		sp.release()
		return nil, fmt.Errorf("%w: %v", errSpoolWrite, err)
	}
	return sp, nil
}

// writeError marks an error of the spool file in io.Copy (which does not say which side failed).
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// spoolWriter writes to the spool file, marking its errors.
type spoolWriter struct{ f *os.File }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// text returns a reader of the message from offset off (the end of its header section) to its end.
func (sp *spooled) text(off int64) io.Reader { return io.NewSectionReader(sp.f, off, sp.size-off) }

// release closes and removes the spool file.
func (sp *spooled) release() {
	sp.f.Close()
	os.Remove(sp.f.Name())
}
