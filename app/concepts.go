package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/concepts/library"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// ConceptInfo is one concept of the library as the screens show it.
type ConceptInfo struct {
	Name       string // written <Name> in prompts
	Superclass string // the superordinate word
	Size       int64  // file size in bytes
	Thumbnail  []byte // PNG, may be empty
	Beta, Tau  float64
	BaseModel  string // hash of the base model it was trained on
	// Disabled says why the concept cannot be used with the loaded model
	// (another base model, an unreadable file); "" when it can.
	Disabled string
}

// Placeholder is how a concept is written in prompts: "<name>".
func Placeholder(name string) string { return concepts.Placeholder(name) }

// PromptConcepts returns the concept names a prompt writes <name>, each
// once, lower-cased.
func PromptConcepts(prompts ...string) []string { return concepts.PromptNames(prompts...) }

// Gate limits of the concept sliders.
const (
	MinBeta, MaxBeta = concepts.MinBeta, concepts.MaxBeta
	MinTau, MaxTau   = concepts.MinTau, concepts.MaxTau
)

// Concepts is the concept library service: the concept files in the data
// folder's "concepts" folder, their use in generations, and the text
// covariance C they need, computed once per model in the background and
// cached in the data folder. Its methods are safe for concurrent use.
type Concepts struct {
	lib      *library.Library // nil without a data folder
	libErr   error
	cacheDir string   // where C is cached; "" for no cache
	captions []string // corpus for C; nil is the shipped one
	studio   *Studio

	mu     sync.Mutex
	model  *modelState // the state of the current model
	undo   []library.TrashItem
	cached map[string]*cachedConcept // by lower-cased name
	hooks  listeners[struct{}]
}

// cachedConcept is a concept file read for generation.
type cachedConcept struct {
	mod  time.Time
	size int64
	file *conceptfile.Concept
	hash string
}

func newConcepts(s *Studio, dataDir string, caps []string) *Concepts {
	c := &Concepts{studio: s, captions: caps, cached: map[string]*cachedConcept{}}
	if dataDir == "" {
		c.libErr = errors.New("concepts: no data folder for the concept library")
		return c
	}
	c.lib, c.libErr = library.Open(filepath.Join(dataDir, "concepts"))
	c.cacheDir = filepath.Join(dataDir, "cache", "covariance")
	return c
}

// Dir is the library folder ("" without one).
func (c *Concepts) Dir() string {
	if c.lib == nil {
		return ""
	}
	return c.lib.Dir()
}

// OnChange registers fn, called (on any goroutine) when the list or the
// concepts' usability changed: a library operation, or the loaded model's
// identity became known.
func (c *Concepts) OnChange(fn func()) {
	c.hooks.add(func(struct{}) { fn() })
}

func (c *Concepts) changed() { c.hooks.emit(struct{}{}) }

// List returns the library's concepts, sorted by name. Concepts trained on
// another base model than the loaded one are marked Disabled with the
// reason (once the loaded model's hash is known).
func (c *Concepts) List() ([]ConceptInfo, error) {
	if c.lib == nil {
		return nil, c.libErr
	}
	ents, err := c.lib.List()
	if err != nil {
		return nil, err
	}
	base, known := c.baseHash()
	out := make([]ConceptInfo, 0, len(ents))
	for _, e := range ents {
		ci := ConceptInfo{Name: e.Name, Size: e.Size, Thumbnail: e.Thumbnail}
		switch {
		case e.Err != nil:
			ci.Disabled = "cannot be read: " + e.Err.Error()
		default:
			h := e.Header
			ci.Superclass, ci.Beta, ci.Tau, ci.BaseModel = h.Superclass, float64(h.Beta), float64(h.Tau), h.BaseModel
			if known {
				if err := h.CheckBase(base); err != nil {
					ci.Disabled = err.Error()
				}
			}
		}
		out = append(out, ci)
	}
	return out, nil
}

// baseHash returns the loaded model's base hash, if known yet.
func (c *Concepts) baseHash() (string, bool) {
	c.mu.Lock()
	m := c.model
	c.mu.Unlock()
	if m == nil {
		return "", false
	}
	select {
	case <-m.hashed:
		return m.base, m.hErr == nil
	default:
		return "", false
	}
}

func (c *Concepts) library() (*library.Library, error) {
	if c.lib == nil {
		return nil, c.libErr
	}
	return c.lib, nil
}

// Rename gives concept old the name new.
func (c *Concepts) Rename(old, new string) error {
	lib, err := c.library()
	if err != nil {
		return err
	}
	if err := conceptfile.ValidName(new); err != nil {
		return err
	}
	if err := lib.Rename(old, new); err != nil {
		return err
	}
	c.changed()
	return nil
}

// Delete moves the concept to the library's trash; Undo brings it back.
func (c *Concepts) Delete(name string) error {
	lib, err := c.library()
	if err != nil {
		return err
	}
	it, err := lib.Delete(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.undo = append(c.undo, it)
	c.mu.Unlock()
	c.changed()
	return nil
}

// CanUndo reports whether a delete can be undone.
func (c *Concepts) CanUndo() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.undo) > 0
}

// Undo restores the most recently deleted concept and returns its name.
func (c *Concepts) Undo() (string, error) {
	lib, err := c.library()
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.undo) == 0 {
		c.mu.Unlock()
		return "", errors.New("nothing to undo")
	}
	it := c.undo[len(c.undo)-1]
	c.undo = c.undo[:len(c.undo)-1]
	c.mu.Unlock()
	name, err := lib.Restore(it.ID)
	if err != nil {
		return "", err
	}
	c.changed()
	return name, nil
}

// Duplicate copies the concept under a free name (name-2, name-3, …) and
// returns it.
func (c *Concepts) Duplicate(name string) (string, error) {
	lib, err := c.library()
	if err != nil {
		return "", err
	}
	n := lib.FreeName(name)
	if err := lib.Duplicate(name, n); err != nil {
		return "", err
	}
	c.changed()
	return n, nil
}

// Import copies a .concept file into the library (under a free name when
// its own is taken) and returns the name it got.
func (c *Concepts) Import(path string) (string, error) {
	lib, err := c.library()
	if err != nil {
		return "", err
	}
	name, err := lib.Import(path, "")
	if errors.Is(err, library.ErrExists) {
		h, herr := conceptfile.ReadFileHeader(path)
		if herr != nil {
			return "", err
		}
		name, err = lib.Import(path, lib.FreeName(h.Name))
	}
	if err != nil {
		return "", err
	}
	c.changed()
	return name, nil
}

// Export writes the concept to the file dst (replacing it: the save
// dialog has asked).
func (c *Concepts) Export(name, dst string) error {
	lib, err := c.library()
	if err != nil {
		return err
	}
	if !strings.EqualFold(filepath.Ext(dst), library.Ext) {
		dst += library.Ext
	}
	return lib.Export(name, dst, true)
}

// file returns the library's concept name, read once per file version.
func (c *Concepts) file(name string) (*cachedConcept, error) {
	lib, err := c.library()
	if err != nil {
		return nil, err
	}
	path, err := lib.Path(name)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("concept %s is not in the library (%s)", name, c.Dir())
	}
	key := strings.ToLower(name)
	c.mu.Lock()
	cc := c.cached[key]
	c.mu.Unlock()
	if cc != nil && cc.mod.Equal(st.ModTime()) && cc.size == st.Size() {
		return cc, nil
	}
	if st.Size() > conceptfile.MaxTensorBytes+conceptfile.MaxHeaderBytes+conceptfile.MaxThumbnailBytes+64 {
		return nil, fmt.Errorf("concept %s: file of %d bytes is too large to be a concept", name, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("concept %s: %w", name, err)
	}
	f, err := conceptfile.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("concept %s: %w", name, err)
	}
	f.Name = name
	cc = &cachedConcept{mod: st.ModTime(), size: st.Size(), file: f, hash: concepts.FileHash(data)}
	c.mu.Lock()
	c.cached[key] = cc
	c.mu.Unlock()
	return cc, nil
}

// Stamp returns comp with each concept's file hash filled in, for the
// settings kept with an image (concepts not found keep theirs).
func (c *Concepts) Stamp(comp export.Composition) export.Composition {
	comp.Concepts = slices.Clone(comp.Concepts)
	for i, u := range comp.Concepts {
		if cc, err := c.file(u.Name); err == nil {
			comp.Concepts[i].Hash = cc.hash
		}
	}
	return comp
}

// Sync returns comp with Concepts matching the concepts its prompts write
// <name>: those already there keep their gates and locking, new ones get
// their file's default gate (or the inference defaults) and the locking
// of the others; absent ones are dropped.
func (c *Concepts) Sync(comp export.Composition) export.Composition {
	names := PromptConcepts(comp.Prompt, comp.Negative)
	lock := "local"
	if len(comp.Concepts) > 0 && comp.Concepts[0].Locking != "" {
		lock = comp.Concepts[0].Locking
	}
	var out []export.ConceptUse
	for _, n := range names {
		i := slices.IndexFunc(comp.Concepts, func(u export.ConceptUse) bool { return strings.EqualFold(u.Name, n) })
		if i >= 0 {
			out = append(out, comp.Concepts[i])
			continue
		}
		u := export.ConceptUse{Name: n, Beta: edit.InferenceBeta, Tau: edit.InferenceTau, Locking: lock}
		if cc, err := c.file(n); err == nil {
			u.Name, u.Beta, u.Tau, u.Hash = cc.file.Name, float64(cc.file.Beta), float64(cc.file.Tau), cc.hash
		}
		out = append(out, u)
	}
	comp.Concepts = out
	return comp
}

// edit returns the pipeline edit of comp's concepts for model p (nil for
// none). It waits for the model's C (ctx stops the wait).
func (c *Concepts) edit(ctx context.Context, p *pipeline.Pipeline, comp export.Composition) (pipeline.ConditioningEdit, error) {
	for _, n := range PromptConcepts(comp.Prompt, comp.Negative) {
		if !slices.ContainsFunc(comp.Concepts, func(u export.ConceptUse) bool { return strings.EqualFold(u.Name, n) }) {
			return nil, fmt.Errorf("the prompt writes <%s> but the composition does not use a concept of that name", n)
		}
	}
	if len(comp.Concepts) == 0 {
		return nil, nil
	}
	multi, err := concepts.ParseMulti(comp.ConceptMulti)
	if err != nil {
		return nil, err
	}
	var opt edit.Options
	opt.Multi = multi
	for _, u := range comp.Concepts {
		l, err := concepts.ParseLock(u.Locking)
		if err != nil {
			return nil, fmt.Errorf("concept %s: %w", u.Name, err)
		}
		if l == edit.Global {
			opt.Lock = edit.Global
		}
	}
	files := make([]*cachedConcept, len(comp.Concepts))
	for i, u := range comp.Concepts {
		if files[i], err = c.file(u.Name); err != nil {
			return nil, err
		}
	}
	m, err := c.state(ctx, p)
	if err != nil {
		return nil, err
	}
	uses := make([]concepts.Use, len(files))
	for i, f := range files {
		ec, err := concepts.FromFile(f.file, p, m.base)
		if err != nil {
			return nil, err
		}
		uses[i] = concepts.Use{Concept: ec, Beta: comp.Concepts[i].Beta, Tau: comp.Concepts[i].Tau}
	}
	return concepts.NewSet(uses, m.cv, opt)
}
