package library

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
)

func concept(name string, beta float32) *conceptfile.Concept {
	return &conceptfile.Concept{
		Header: conceptfile.Header{
			Name: name, Superclass: "cat", SuperclassToken: 2368, Beta: beta, Tau: 0.15,
			BaseModel: "abc", Covariance: "def",
		},
		Embedding:   []float32{1, 2, 3},
		TargetInput: []float32{4, 5, 6},
		Layers:      []conceptfile.Layer{{Name: "l0", OutK: []float32{1, 2}, OutV: []float32{3, 4}}},
	}
}

func open(t *testing.T) *Library {
	t.Helper()
	l, err := Open(filepath.Join(t.TempDir(), "concepts"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func names(t *testing.T, l *Library) []string {
	t.Helper()
	es, err := l.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func TestSaveListLoad(t *testing.T) {
	l := open(t)
	for _, n := range []string{"tabby", "Bear", "app-1"} {
		if err := l.Save(concept(n, 0.7)); err != nil {
			t.Fatal(err)
		}
	}
	if got := names(t, l); !slices.Equal(got, []string{"app-1", "Bear", "tabby"}) {
		t.Errorf("List = %v", got)
	}
	// no clobbering, case-insensitively (prompts are lower-cased)
	for _, n := range []string{"tabby", "TABBY"} {
		err := l.Save(concept(n, 0.5))
		if !errors.Is(err, ErrExists) || !strings.Contains(strings.ToLower(err.Error()), "tabby-2") {
			t.Errorf("Save %s again: err = %v", n, err)
		}
	}
	c, err := l.Load("tabby")
	if err != nil || c.Beta != 0.7 {
		t.Fatalf("Load: %v, beta %v", err, c.Beta)
	}
	if _, err := l.Load("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load missing: %v", err)
	}
	if _, err := l.Load("../etc/passwd"); err == nil {
		t.Error("Load with a path in the name: no error")
	}
	c.Beta = 0.6
	if err := l.Replace(c); err != nil {
		t.Fatal(err)
	}
	if c, _ := l.Load("tabby"); c.Beta != 0.6 {
		t.Errorf("after Replace beta = %v", c.Beta)
	}
}

func TestListReportsBrokenFiles(t *testing.T) {
	l := open(t)
	if err := l.Save(concept("good", 0.7)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(l.Dir(), "broken.concept"), []byte("PFCONCPT\x01\x00\x00\x00garbage"), 0o644)
	os.WriteFile(filepath.Join(l.Dir(), "notes.txt"), []byte("x"), 0o644)
	es, err := l.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Name != "broken" || es[0].Err == nil || es[1].Err != nil || es[1].Header.Superclass != "cat" {
		t.Fatalf("List = %+v", es)
	}
}

func TestRenameDuplicate(t *testing.T) {
	l := open(t)
	l.Save(concept("a", 0.7))
	l.Save(concept("b", 0.7))
	if err := l.Rename("a", "b"); !errors.Is(err, ErrExists) {
		t.Errorf("rename onto b: %v", err)
	}
	if err := l.Rename("a", "c"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, l); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("after rename: %v", got)
	}
	c, err := conceptfile.ReadFile(filepath.Join(l.Dir(), "c.concept"))
	if err != nil || c.Name != "c" {
		t.Errorf("renamed file holds name %q (%v), want c", c.Name, err)
	}
	if err := l.Rename("c", "C"); err != nil { // change of case only
		t.Fatal(err)
	}
	if got := names(t, l); !slices.Equal(got, []string{"b", "C"}) {
		t.Errorf("after case rename: %v", got)
	}
	if err := l.Duplicate("b", "b2"); err != nil {
		t.Fatal(err)
	}
	if err := l.Duplicate("b", "C"); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate onto C: %v", err)
	}
	if c, err := l.Load("b2"); err != nil || c.Name != "b2" {
		t.Errorf("duplicate: %v", err)
	}
	if err := l.Rename("b", "bad name"); err == nil {
		t.Error("rename to an unsafe name: no error")
	}
}

func TestDeleteRestore(t *testing.T) {
	l := open(t)
	l.Save(concept("x", 0.7))
	it, err := l.Delete("x")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, l); len(got) != 0 {
		t.Errorf("after delete: %v", got)
	}
	items, err := l.Trash()
	if err != nil || len(items) != 1 || items[0].Name != "x" || items[0].ID != it.ID {
		t.Fatalf("Trash = %+v, %v", items, err)
	}
	// a new x blocks the restore
	l.Save(concept("x", 0.5))
	if _, err := l.Restore(it.ID); !errors.Is(err, ErrExists) {
		t.Errorf("restore onto a new x: %v", err)
	}
	l.Delete("x")
	if name, err := l.Restore(it.ID); err != nil || name != "x" {
		t.Fatalf("Restore: %q, %v", name, err)
	}
	if c, _ := l.Load("x"); c.Beta != 0.7 {
		t.Errorf("restored the wrong x (beta %v)", c.Beta)
	}
	if _, err := l.Restore("../x.1.concept"); err == nil {
		t.Error("restore of a path: no error")
	}
	if err := l.EmptyTrash(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if items, _ := l.Trash(); len(items) != 0 {
		t.Errorf("trash after emptying: %v", items)
	}
}

func TestImportExport(t *testing.T) {
	l := open(t)
	out := t.TempDir()
	src := filepath.Join(out, "given.concept")
	if err := conceptfile.WriteFile(src, concept("fluffy", 0.7)); err != nil {
		t.Fatal(err)
	}
	name, err := l.Import(src, "")
	if err != nil || name != "fluffy" {
		t.Fatalf("Import: %q, %v", name, err)
	}
	if _, err := l.Import(src, ""); !errors.Is(err, ErrExists) {
		t.Errorf("import twice: %v", err)
	}
	if name, err := l.Import(src, "fluffy2"); err != nil || name != "fluffy2" {
		t.Errorf("import under a new name: %q, %v", name, err)
	}
	bad := filepath.Join(out, "bad.concept")
	data, _ := os.ReadFile(src)
	data[len(data)-20] ^= 1
	os.WriteFile(bad, data, 0o644)
	if _, err := l.Import(bad, "x"); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("import of a corrupt file: %v", err)
	}
	if names := names(t, l); len(names) != 2 {
		t.Errorf("library after a failed import: %v", names)
	}
	dst := filepath.Join(out, "exported.concept")
	if err := l.Export("fluffy2", dst, false); err != nil {
		t.Fatal(err)
	}
	if c, err := conceptfile.ReadFile(dst); err != nil || c.Name != "fluffy2" {
		t.Errorf("exported: %v", err)
	}
	if err := l.Export("fluffy", dst, false); !errors.Is(err, ErrExists) {
		t.Errorf("export onto an existing file: %v", err)
	}
	if err := l.Export("fluffy", dst, true); err != nil {
		t.Fatal(err)
	}
	if c, _ := conceptfile.ReadFile(dst); c.Name != "fluffy" {
		t.Errorf("overwrite export holds %q", c.Name)
	}
	if l.FreeName("fluffy") != "fluffy-2" || l.FreeName("new") != "new" {
		t.Errorf("FreeName: %q %q", l.FreeName("fluffy"), l.FreeName("new"))
	}
}
