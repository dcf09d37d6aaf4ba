// Package library keeps the user's Perfusion concepts in one folder of the
// app's data folder (the caller passes its path): one NAME.concept file per
// concept, listed cheaply from their headers and thumbnails, with rename,
// duplicate, import, export, and delete that moves files to a trash
// subfolder so that it can be undone (Restore).
//
// A concept's name is its file name without the extension; it is also the
// placeholder written <name> in prompts, so Load hands the concept out under
// that name even when the file was renamed outside the app. Because the
// CLIP tokenizer lower-cases prompts, two names that differ only in case
// are the same name here. Every write goes through a temporary file and a
// rename or link, and no operation replaces an existing concept.
package library

import (
	"errors"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
)

// Ext is the extension of concept files.
const Ext = ".concept"

// TrashDir is the subfolder deleted concepts move to.
const TrashDir = ".trash"

// ErrExists reports that a concept (or an export target) of that name
// already exists; nothing was replaced.
var ErrExists = errors.New("already exists")

// ErrNotFound reports that no concept has that name.
var ErrNotFound = errors.New("no such concept")

// Library is a folder of concept files. Its methods are safe for
// concurrent use within one process.
type Library struct {
	dir string
	mu  sync.Mutex
}

// Open returns the library in dir, creating the folder if needed.
func Open(dir string) (*Library, error) {
	if dir == "" {
		return nil, fmt.Errorf("library: no folder given")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("library: %w", err)
	}
	return &Library{dir: dir}, nil
}

// Dir is the library's folder.
func (l *Library) Dir() string { return l.dir }

// Entry is one concept file as List sees it.
type Entry struct {
	Name     string    // file name without Ext: the concept's name in prompts
	Path     string    // the file
	Size     int64     // bytes
	Modified time.Time // file modification time
	// Header and Thumbnail are read from the file (no tensors); Header is
	// nil when Err is set.
	Header    *conceptfile.Header
	Thumbnail []byte
	Err       error // why the file cannot be used (corrupt, other version, bad name)
}

// List returns every concept file, sorted by name (case-insensitively). A
// file that cannot be read is listed with Err set rather than failing the
// listing. Only headers and thumbnails are read.
func (l *Library) List() ([]Entry, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("library: %w", err)
	}
	var out []Entry
	for _, de := range ents {
		name, ok := strings.CutSuffix(de.Name(), Ext)
		if !ok || de.IsDir() || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		e := Entry{Name: name, Path: filepath.Join(l.dir, de.Name())}
		if info, err := de.Info(); err == nil {
			e.Size, e.Modified = info.Size(), info.ModTime()
		}
		if err := conceptfile.ValidName(name); err != nil {
			e.Err = err
		} else if c, err := conceptfile.ReadFileHeader(e.Path); err != nil {
			e.Err = err
		} else {
			c.Header.Name = name
			e.Header, e.Thumbnail = &c.Header, c.Thumbnail
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return out, nil
}

// Path returns the file of the concept called name (which need not exist).
func (l *Library) Path(name string) (string, error) {
	if err := conceptfile.ValidName(name); err != nil {
		return "", fmt.Errorf("library: %w", err)
	}
	return filepath.Join(l.dir, name+Ext), nil
}

// Load reads and checks the concept called name; its Name is set to name.
func (l *Library) Load(name string) (*conceptfile.Concept, error) {
	p, err := l.existing(name)
	if err != nil {
		return nil, err
	}
	c, err := conceptfile.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("library: %w", err)
	}
	c.Name = name
	return c, nil
}

// Save adds c to the library under c.Name. It fails with ErrExists (and
// replaces nothing) when that name is taken; see FreeName.
func (l *Library) Save(c *conceptfile.Concept) error {
	data, err := conceptfile.Encode(c)
	if err != nil {
		return fmt.Errorf("library: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.add(c.Name, data)
}

// Replace writes c over the existing concept of the same name (e.g. after
// changing its default gate).
func (l *Library) Replace(c *conceptfile.Concept) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.existing(c.Name)
	if err != nil {
		return err
	}
	if err := conceptfile.WriteFile(p, c); err != nil {
		return fmt.Errorf("library: %w", err)
	}
	return nil
}

// Rename gives the concept old the name new (the placeholder in the file
// changes too). It fails with ErrExists if new is taken by another concept.
func (l *Library) Rename(old, new string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	oldPath, err := l.existing(old)
	if err != nil {
		return err
	}
	newPath, err := l.Path(new)
	if err != nil {
		return err
	}
	c, err := conceptfile.ReadFile(oldPath)
	if err != nil {
		return fmt.Errorf("library: rename %s: %w", old, err)
	}
	c.Name = new
	data, err := conceptfile.Encode(c)
	if err != nil {
		return fmt.Errorf("library: rename %s: %w", old, err)
	}
	if !strings.EqualFold(old, new) {
		if err := l.add(new, data); err != nil {
			return err
		}
		if err := os.Remove(oldPath); err != nil {
			return fmt.Errorf("library: rename %s: %w", old, err)
		}
		return nil
	}
	// A change of case only: replace the file in place. On a
	// case-insensitive file system old and new are one file.
	if err := atomicfile.WriteFile(newPath, data); err != nil {
		return fmt.Errorf("library: rename %s: %w", old, err)
	}
	if a, errA := os.Stat(oldPath); errA == nil {
		if b, errB := os.Stat(newPath); errB == nil && !os.SameFile(a, b) {
			return os.Remove(oldPath)
		}
	}
	return nil
}

// Duplicate copies the concept name to a new concept newName.
func (l *Library) Duplicate(name, newName string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := l.existing(name)
	if err != nil {
		return err
	}
	c, err := conceptfile.ReadFile(p)
	if err != nil {
		return fmt.Errorf("library: duplicate %s: %w", name, err)
	}
	c.Name = newName
	data, err := conceptfile.Encode(c)
	if err != nil {
		return fmt.Errorf("library: duplicate %s: %w", name, err)
	}
	return l.add(newName, data)
}

// Import copies the concept file at src into the library after checking it
// completely, under name (or the file's own name when name is ""). It
// returns the name used; ErrExists when that name is taken.
func (l *Library) Import(src, name string) (string, error) {
	raw, err := readLimited(src)
	if err != nil {
		return "", fmt.Errorf("library: import: %w", err)
	}
	c, err := conceptfile.Decode(raw)
	if err != nil {
		return "", fmt.Errorf("library: import %s: %w", src, err)
	}
	data := raw
	if name != "" && name != c.Name {
		c.Name = name
		if data, err = conceptfile.Encode(c); err != nil {
			return "", fmt.Errorf("library: import %s: %w", src, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.add(c.Name, data); err != nil {
		return "", err
	}
	return c.Name, nil
}

// Export copies the concept name to the file dst, checked first. Unless
// overwrite is set an existing dst is left alone (ErrExists).
func (l *Library) Export(name, dst string, overwrite bool) error {
	p, err := l.existing(name)
	if err != nil {
		return err
	}
	data, err := readLimited(p)
	if err != nil {
		return fmt.Errorf("library: export: %w", err)
	}
	c, err := conceptfile.Decode(data)
	if err != nil {
		return fmt.Errorf("library: export %s: %w", name, err)
	}
	if c.Name != name { // renamed outside the app: export under its library name
		c.Name = name
		if data, err = conceptfile.Encode(c); err != nil {
			return fmt.Errorf("library: export %s: %w", name, err)
		}
	}
	if overwrite {
		if err := atomicfile.WriteFile(dst, data); err != nil {
			return fmt.Errorf("library: export: %w", err)
		}
		return nil
	}
	if err := writeNew(dst, data); err != nil {
		return fmt.Errorf("library: export %s: %w", name, err)
	}
	return nil
}

// FreeName returns base if no concept has that name, else base-2, base-3, …
// (the first one free), for suggesting a name on a clash.
func (l *Library) FreeName(base string) string {
	for i := 1; ; i++ {
		n := base
		if i > 1 {
			n = base + "-" + strconv.Itoa(i)
		}
		if l.taken(n) == "" {
			return n
		}
	}
}

// existing returns the path of the concept name, or ErrNotFound.
func (l *Library) existing(name string) (string, error) {
	p, err := l.Path(name)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("library: concept %q: %w", name, ErrNotFound)
		}
		return "", fmt.Errorf("library: %w", err)
	}
	return p, nil
}

// taken returns the existing concept name that equals name ignoring case,
// or "".
func (l *Library) taken(name string) string {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return ""
	}
	for _, de := range ents {
		if n, ok := strings.CutSuffix(de.Name(), Ext); ok && strings.EqualFold(n, name) {
			return n
		}
	}
	return ""
}

// add writes data as the new concept name, refusing any name taken
// (ignoring case). The caller holds l.mu.
func (l *Library) add(name string, data []byte) error {
	p, err := l.Path(name)
	if err != nil {
		return err
	}
	if t := l.taken(name); t != "" {
		return fmt.Errorf("library: concept %q: %w (as %q); choose another name, e.g. %q", name, ErrExists, t, l.FreeName(name))
	}
	if err := writeNew(p, data); err != nil {
		return fmt.Errorf("library: %w", err)
	}
	return nil
}
