package app

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"image"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// ExportOptions change what ExportPNG writes.
type ExportOptions struct {
	// Concepts puts the concept files the composition uses into the PNG
	// (compressed), so that dropping the PNG on another installation
	// restores the whole composition.
	Concepts bool
}

// ExportOptions returns the export options the settings ask for
// (concepts embedded unless the settings turn it off).
func (s *Studio) ExportOptions() ExportOptions {
	return ExportOptions{Concepts: !s.Settings.Get().ExportWithoutConcepts}
}

// maxConceptFile bounds a concept file read from the library or a PNG.
const maxConceptFile = conceptfile.MaxTensorBytes + conceptfile.MaxHeaderBytes + conceptfile.MaxThumbnailBytes + 64

// maxImportPNG bounds the PNG files ImportPNG reads into memory.
const maxImportPNG = 512 << 20

// ExportPNG writes img to path (a .png) with c's settings: the web UI's
// "parameters" text and the full settings as JSON, and with opt.Concepts
// the concept files c uses. The file is replaced atomically.
func (s *Studio) ExportPNG(path string, img image.Image, c export.Composition, opt ExportOptions) error {
	if img == nil {
		return errors.New("export: no image to export yet: render one first")
	}
	if !strings.EqualFold(filepath.Ext(path), ".png") {
		path += ".png"
	}
	data, err := export.EncodeComposition(img, c, samplerLabel)
	if err != nil {
		return err
	}
	if opt.Concepts && len(c.Concepts) > 0 {
		files := make([][]byte, len(c.Concepts))
		for i, u := range c.Concepts {
			if files[i], err = s.Concepts.fileBytes(u.Name); err != nil {
				return fmt.Errorf("export: %w (turn off embedding concepts in Settings to export without them)", err)
			}
		}
		if data, err = export.AddConcepts(data, files); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(path, data)
}

// ImportPNG reads the settings a PNG carries (ours, or the web UI's
// "parameters"), for restoring a composition from a dropped image. Concept
// files embedded in the PNG go into the library when it lacks them (a
// concept with the same content is reused; one whose name is taken by
// another concept gets a free name, and the composition's prompts and
// concepts are renamed to match). A PNG without settings gives
// export.ErrNoSettings.
func (s *Studio) ImportPNG(path string) (export.Composition, error) {
	st, err := os.Stat(path)
	if err != nil {
		return export.Composition{}, fmt.Errorf("export: %w", err)
	}
	if st.Size() > maxImportPNG {
		return export.Composition{}, fmt.Errorf("export: %s is %d MB, too large for an image made here (at most %d MB)", path, st.Size()>>20, maxImportPNG>>20)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return export.Composition{}, fmt.Errorf("export: %w", err)
	}
	if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		return export.Composition{}, fmt.Errorf("export: %s is not a PNG image", path)
	}
	c, err := export.ReadComposition(data, func(label string) (string, error) {
		n, err := pipeline.ParseSampler(label)
		if err != nil {
			return label, nil // keep an unknown sampler; rendering says what is wrong
		}
		return n, nil
	})
	if err != nil {
		return export.Composition{}, fmt.Errorf("%w (%s)", err, path)
	}
	files, err := export.Concepts(data, maxConceptFile)
	if err != nil {
		return export.Composition{}, fmt.Errorf("%w (%s)", err, path)
	}
	if len(files) == 0 {
		return c, nil
	}
	names, err := s.Concepts.importFiles(files)
	if err != nil {
		return export.Composition{}, fmt.Errorf("restore concepts of %s: %w", filepath.Base(path), err)
	}
	return renameConcepts(c, names, s.Concepts), nil
}

// fileBytes returns the library file of the concept name, checked.
func (c *Concepts) fileBytes(name string) ([]byte, error) {
	if _, err := c.file(name); err != nil {
		return nil, err
	}
	lib, err := c.library()
	if err != nil {
		return nil, err
	}
	path, err := lib.Path(name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("concept %s: %w", name, err)
	}
	return data, nil
}

// importFiles brings concept files into the library and returns, by each
// file's lower-cased name, the library name it has there: a library
// concept with the same content (file hash), else the file's own name when
// free, else a free name.
func (c *Concepts) importFiles(files [][]byte) (map[string]string, error) {
	lib, err := c.library()
	if err != nil {
		return nil, err
	}
	byHash := map[string]string{}
	if list, err := c.List(); err == nil {
		for _, e := range list {
			if cc, err := c.file(e.Name); err == nil {
				byHash[cc.hash] = e.Name
			}
		}
	}
	names := map[string]string{}
	added := false
	for i, data := range files {
		f, err := conceptfile.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("embedded concept %d: %w", i+1, err)
		}
		key := strings.ToLower(f.Name)
		if n, ok := byHash[concepts.FileHash(data)]; ok {
			names[key] = n
			continue
		}
		f.Name = lib.FreeName(f.Name)
		if err := lib.Save(f); err != nil {
			return nil, fmt.Errorf("embedded concept %s: %w", f.Name, err)
		}
		added = true
		names[key] = f.Name
	}
	if added {
		c.changed()
	}
	return names, nil
}

// placeholderRE matches a concept placeholder as the concepts package
// writes it ("<name>").
var placeholderRE = regexp.MustCompile(`<([\p{L}\p{N}][\p{L}\p{N}_-]*)>`)

// renameConcepts returns comp with its placeholders and concepts renamed
// by names (lower-cased old name → new name, all at once) and the
// concepts' hashes those of the library files.
func renameConcepts(comp export.Composition, names map[string]string, lib *Concepts) export.Composition {
	rename := func(p string) string {
		return placeholderRE.ReplaceAllStringFunc(p, func(m string) string {
			old := m[1 : len(m)-1]
			if n, ok := names[strings.ToLower(old)]; ok && !strings.EqualFold(n, old) {
				return concepts.Placeholder(n)
			}
			return m
		})
	}
	comp.Prompt, comp.Negative = rename(comp.Prompt), rename(comp.Negative)
	uses := make([]export.ConceptUse, len(comp.Concepts))
	for i, u := range comp.Concepts {
		if n, ok := names[strings.ToLower(u.Name)]; ok {
			u.Name = n
			if cc, err := lib.file(n); err == nil {
				u.Hash = cc.hash
			}
		}
		uses[i] = u
	}
	if comp.Concepts != nil {
		comp.Concepts = uses
	}
	return comp
}
