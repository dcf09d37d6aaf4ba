// Package atomicfile writes files so that readers, and a crash, only ever
// leave the old content or the new one: the data goes to a synced
// temporary file beside the target, renamed over it.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// WriteFile writes data to path atomically. A new file gets the
// permissions the umask allows (0666 less the umask, as any program's new
// files); a file that is replaced keeps its permissions. The folder must
// exist.
func WriteFile(path string, data []byte) (err error) {
	perm, keep := os.FileMode(0o666), false
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		perm, keep = st.Mode().Perm(), true
	}
	f, tmp, err := createTemp(path, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if keep { // the umask applied at creation may have narrowed it
		if err = f.Chmod(perm); err != nil {
			return err
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
	return os.Rename(tmp, path)
}

// createTemp creates a new hidden file beside path, with perm less the
// umask (os.CreateTemp would always use 0600).
func createTemp(path string, perm os.FileMode) (*os.File, string, error) {
	dir, base := filepath.Split(path)
	for range 100 {
		tmp := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, tmp, err
	}
	return nil, "", fmt.Errorf("no free temporary name beside %s", path)
}
