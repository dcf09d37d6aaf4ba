package assets

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// installIDLen is how many hex digits of the content hash name an install.
const installIDLen = 16

// manifestEntry is one file of an embedded folder.
type manifestEntry struct {
	name string // slash-separated, relative to the folder's root
	size int64
	sum  [sha256.Size]byte
}

// manifest lists every regular file of fsys with its size and SHA-256,
// sorted by name.
type manifest []manifestEntry

// readManifest hashes every file of fsys. A folder with no files, or with
// anything other than files and folders, is an error.
func readManifest(fsys fs.FS) (manifest, error) {
	var m manifest
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", name)
		}
		f, err := fsys.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		e := manifestEntry{name: name, size: n}
		h.Sum(e.sum[:0])
		m = append(m, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, errors.New("no files")
	}
	slices.SortFunc(m, func(a, b manifestEntry) int { return strings.Compare(a.name, b.name) })
	return m, nil
}

// id names the content: the first installIDLen hex digits of a SHA-256
// over every file's name, size and hash. Another version of the files
// gets another id, so another folder.
func (m manifest) id() string {
	h := sha256.New()
	for _, e := range m {
		fmt.Fprintf(h, "%s\x00%d\x00%x\n", e.name, e.size, e.sum)
	}
	return hex.EncodeToString(h.Sum(nil))[:installIDLen]
}

// size is the total size of the files in bytes.
func (m manifest) size() int64 {
	var n int64
	for _, e := range m {
		n += e.size
	}
	return n
}

// verify explains how the folder dir differs from m: a file missing, of
// another size or content, or a file that m does not list. nil means dir
// holds exactly m's files.
func (m manifest) verify(dir string) error {
	want := make(map[string]manifestEntry, len(m))
	for _, e := range m {
		want[e.name] = e
	}
	seen := make(map[string]bool, len(m))
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		e, ok := want[name]
		switch {
		case !ok:
			return fmt.Errorf("unexpected file %s", name)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", name)
		}
		if err := checkFile(p, e); err != nil {
			return err
		}
		seen[name] = true
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range m {
		if !seen[e.name] {
			return fmt.Errorf("%s is missing", e.name)
		}
	}
	return nil
}

// checkFile checks one installed file's size, then its content.
func checkFile(p string, e manifestEntry) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != e.size {
		return fmt.Errorf("%s has %d bytes, want %d", e.name, st.Size(), e.size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", e.name, err)
	}
	if !bytes.Equal(h.Sum(nil), e.sum[:]) {
		return fmt.Errorf("%s is damaged (its content changed)", e.name)
	}
	return nil
}

// install materialises fsys as a real folder root/ID, ID the content's
// id, and returns that folder. An install that is already there is
// checked file by file (size and SHA-256) and used; a missing or damaged
// one is written again, into a temporary folder beside it that is then
// renamed into place, so the folder only ever appears complete. Processes
// installing at once take turns through a lock file (root/ID.lock, where
// the system has file locks); a process that finds the work done by
// another uses its result.
func install(fsys fs.FS, root string) (string, error) {
	m, err := readManifest(fsys)
	if err != nil {
		return "", fmt.Errorf("embedded folder: %w", err)
	}
	id := m.id()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(root, id)
	if m.verify(dir) == nil { // the usual case: installed and intact, no lock needed
		return dir, nil
	}
	unlock, err := lockFile(filepath.Join(root, id+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another process may have installed it while this one waited.
	problem := m.verify(dir)
	if problem == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(root, "."+id+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // gone after the rename; left over only on failure
	if err := writeTree(fsys, m, tmp); err != nil {
		return "", err
	}
	if err := m.verify(tmp); err != nil {
		return "", fmt.Errorf("fresh copy: %w", err)
	}
	if _, err := os.Lstat(dir); err == nil {
		// Damaged: move it aside first (a process that mapped its files
		// keeps its mapping), then remove it.
		old := filepath.Join(root, "."+id+".old-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		if err := os.Rename(dir, old); err != nil {
			return "", fmt.Errorf("replace damaged %s (%v): %w", dir, problem, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Without file locks another process may have won the race: its
		// copy is as good as ours.
		if m.verify(dir) == nil {
			return dir, nil
		}
		return "", err
	}
	syncDir(root)
	return dir, nil
}

// writeTree writes m's files from fsys under dir, each synced to disk.
func writeTree(fsys fs.FS, m manifest, dir string) error {
	for _, e := range m {
		p := filepath.Join(dir, filepath.FromSlash(e.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := copyFile(fsys, e.name, p); err != nil {
			return fmt.Errorf("write %s: %w", e.name, err)
		}
	}
	for _, d := range dirsOf(m) {
		syncDir(filepath.Join(dir, filepath.FromSlash(d)))
	}
	return nil
}

// copyFile copies fsys's file name to the new file p.
func copyFile(fsys fs.FS, name, p string) (err error) {
	src, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err = io.Copy(dst, src); err != nil {
		return err
	}
	return dst.Sync()
}

// dirsOf lists the folders that hold m's files, the root (".") included.
func dirsOf(m manifest) []string {
	var ds []string
	for _, e := range m {
		for d := path.Dir(e.name); ; d = path.Dir(d) {
			if !slices.Contains(ds, d) {
				ds = append(ds, d)
			}
			if d == "." {
				break
			}
		}
	}
	return ds
}

// syncDir makes a folder's entries durable where the system allows it
// (best effort: not every system can sync a folder).
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}
