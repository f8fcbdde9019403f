// Package atomicfile owns the one way tanglemail replaces a file on disk: key files, the node's
// password and API files, the TLS certificate, the libp2p key and the peers file.
//
// Write makes the replacement atomic and durable. A reader sees the old content or the new, never a
// mix, and once Write returns nil the new content survives a crash or power loss:
//
//  1. a temporary file is created in the same directory (so the rename cannot cross file systems),
//     named "."+base+".tmp-*", with mode 0600 from the start (os.CreateTemp);
//  2. it is set to the requested permissions, and Write checks that the file has no permission bit
//     beyond them (a file system or ACL that widens them gives ErrMode);
//  3. the data is written and the file fsynced and closed;
//  4. it is renamed over the destination, and the directory is fsynced so that the rename itself is
//     on disk.
//
// On any error the temporary file is removed and the destination is left as it was. Permissions are
// not enforced on Windows, where chmod means little, nor is the directory synced there.
//
// Write does not lock: two concurrent Writes of one path both succeed and the last rename wins, each
// whole. Callers that need one writer (the keystore, the data directory) hold their own lock.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ErrMode is returned when the temporary file ends up with permission bits beyond those asked for.
var ErrMode = errors.New("atomicfile: file has wider permissions than asked for")

// Write replaces path with data, atomically and durably, with permissions perm (see the package
// notes). The directory must exist.
func Write(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if runtime.GOOS != "windows" {
		if err = f.Chmod(perm); err != nil {
			return err
		}
		st, serr := f.Stat()
		if serr != nil {
			return serr
		}
		if extra := st.Mode().Perm() &^ perm.Perm(); extra != 0 {
			return fmt.Errorf("%w: temporary file has mode %v, want %v", ErrMode, st.Mode().Perm(), perm.Perm())
		}
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs directory dir, making the creation, removal or renaming of its entries durable. It is
// a no-op on Windows, and where the file system does not support syncing a directory.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}
