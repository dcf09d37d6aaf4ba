package library

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
)

// maxFileBytes bounds what is read of a file claimed to be a concept.
const maxFileBytes = 4 + conceptfile.MaxHeaderBytes + conceptfile.MaxThumbnailBytes + conceptfile.MaxTensorBytes + 64

// readLimited reads a file of at most maxFileBytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than any concept file (%d bytes at most)", path, maxFileBytes)
	}
	return data, nil
}

// writeNew writes data to path atomically without ever replacing an
// existing file: a synced temporary file is hard-linked to path (the link
// fails if path exists), or, where the file system has no hard links,
// renamed after a check.
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	err = os.Link(tmp, path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrExist):
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	// no hard links here (e.g. FAT): check, then rename
	if _, serr := os.Lstat(path); serr == nil {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	return os.Rename(tmp, path)
}

// TrashItem is a deleted concept that Restore can bring back.
type TrashItem struct {
	ID      string    // identifies the item for Restore
	Name    string    // the concept's name when deleted
	Deleted time.Time // when
	Path    string    // the file in the trash
}

// Delete moves the concept name to the trash folder and returns the item
// that Restore takes to undo it.
func (l *Library) Delete(name string) (TrashItem, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.existing(name)
	if err != nil {
		return TrashItem{}, err
	}
	trash := filepath.Join(l.dir, TrashDir)
	if err := os.MkdirAll(trash, 0o755); err != nil {
		return TrashItem{}, fmt.Errorf("library: delete %s: %w", name, err)
	}
	now := time.Now()
	for n := now.UnixNano(); ; n++ { // names cannot contain '.', so ID splits back
		id := name + "." + strconv.FormatInt(n, 10) + Ext
		dst := filepath.Join(trash, id)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := os.Rename(p, dst); err != nil {
			return TrashItem{}, fmt.Errorf("library: delete %s: %w", name, err)
		}
		return TrashItem{ID: id, Name: name, Deleted: time.Unix(0, n), Path: dst}, nil
	}
}

// Trash lists the deleted concepts, most recent first.
func (l *Library) Trash() ([]TrashItem, error) {
	ents, err := os.ReadDir(filepath.Join(l.dir, TrashDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("library: %w", err)
	}
	var out []TrashItem
	for _, de := range ents {
		if it, ok := l.trashItem(de.Name()); ok {
			out = append(out, it)
		}
	}
	slices.SortFunc(out, func(a, b TrashItem) int { return b.Deleted.Compare(a.Deleted) })
	return out, nil
}

// trashItem parses a trash file name NAME.UNIXNANO.concept.
func (l *Library) trashItem(id string) (TrashItem, bool) {
	stem, ok := strings.CutSuffix(id, Ext)
	if !ok {
		return TrashItem{}, false
	}
	name, stamp, ok := strings.Cut(stem, ".")
	n, err := strconv.ParseInt(stamp, 10, 64)
	if !ok || err != nil || conceptfile.ValidName(name) != nil {
		return TrashItem{}, false
	}
	return TrashItem{ID: id, Name: name, Deleted: time.Unix(0, n), Path: filepath.Join(l.dir, TrashDir, id)}, true
}

// Restore moves a deleted concept back under its name and returns that
// name. It fails with ErrExists when a concept of that name was made since.
func (l *Library) Restore(id string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	it, ok := l.trashItem(id)
	if !ok || filepath.Base(id) != id {
		return "", fmt.Errorf("library: restore %q: not a trash item", id)
	}
	data, err := readLimited(it.Path)
	if err != nil {
		return "", fmt.Errorf("library: restore: %w", err)
	}
	if err := l.add(it.Name, data); err != nil {
		return "", err
	}
	if err := os.Remove(it.Path); err != nil {
		return "", fmt.Errorf("library: restore: %w", err)
	}
	return it.Name, nil
}

// EmptyTrash deletes for good the trash items deleted before cutoff (pass
// time.Now() to empty it all).
func (l *Library) EmptyTrash(cutoff time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	items, err := l.Trash()
	if err != nil {
		return err
	}
	var errs []error
	for _, it := range items {
		if it.Deleted.Before(cutoff) {
			if err := os.Remove(it.Path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
