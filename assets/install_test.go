package assets

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// testTree is a small diffusers-like folder.
func testTree() fstest.MapFS {
	return fstest.MapFS{
		"model_index.json":                   {Data: []byte(`{"_class_name":"StableDiffusionPipeline"}`)},
		"unet/config.json":                   {Data: []byte(`{"sample_size":16}`)},
		"unet/diffusion_pytorch_model.bin":   {Data: bytes.Repeat([]byte{1, 2, 3, 4, 5}, 1000)},
		"tokenizer/vocab.json":               {Data: []byte(`{"a</w>":0}`)},
		"tokenizer/merges.txt":               {Data: []byte("#version: 0.2\n")},
		"text_encoder/deep/er/model.tensors": {Data: []byte("weights")},
		"scheduler/scheduler_config.json":    {Data: []byte(`{}`)},
	}
}

// sameTree fails t unless dir holds exactly fsys's files.
func sameTree(t *testing.T, fsys fs.FS, dir string) {
	t.Helper()
	n := 0
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		want, _ := fs.ReadFile(fsys, name)
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s differs", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got++
		}
		return nil
	})
	if got != n {
		t.Fatalf("%s holds %d files, want %d", dir, got, n)
	}
}

// leftovers lists root's temporary and old folders.
func leftovers(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") || strings.Contains(e.Name(), ".old-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestInstallWritesOnceAndReuses(t *testing.T) {
	tree := testTree()
	root := filepath.Join(t.TempDir(), "cache", "defaultmodel") // made by install
	dir, err := install(tree, root)
	if err != nil {
		t.Fatal(err)
	}
	m, err := readManifest(tree)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, m.id()); dir != want {
		t.Fatalf("installed in %s, want %s", dir, want)
	}
	sameTree(t, tree, dir)
	before, err := os.Stat(filepath.Join(dir, "model_index.json"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := install(tree, root)
	if err != nil || again != dir {
		t.Fatalf("second install: %q, %v; want %q", again, err, dir)
	}
	after, _ := os.Stat(filepath.Join(dir, "model_index.json"))
	if !os.SameFile(before, after) {
		t.Error("an intact install was written again")
	}
	if l := leftovers(t, root); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

func TestInstallNewContentGetsNewFolder(t *testing.T) {
	root := t.TempDir()
	a, err := install(testTree(), root)
	if err != nil {
		t.Fatal(err)
	}
	changed := testTree()
	changed["unet/config.json"] = &fstest.MapFile{Data: []byte(`{"sample_size":8}`)}
	b, err := install(changed, root)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("other content installed in the same folder")
	}
	sameTree(t, testTree(), a)
	sameTree(t, changed, b)
}

func TestInstallRepairsDamage(t *testing.T) {
	damage := map[string]func(dir string) error{
		"truncated file": func(dir string) error {
			return os.Truncate(filepath.Join(dir, "unet", "diffusion_pytorch_model.bin"), 10)
		},
		"byte changed, same size": func(dir string) error {
			p := filepath.Join(dir, "unet", "diffusion_pytorch_model.bin")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0xff
			return os.WriteFile(p, b, 0o644)
		},
		"file removed": func(dir string) error { return os.Remove(filepath.Join(dir, "tokenizer", "merges.txt")) },
		"folder removed": func(dir string) error {
			return os.RemoveAll(filepath.Join(dir, "text_encoder"))
		},
		"stray file": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "tokenizer", "bpe_simple_vocab_16e6.txt"), []byte("x"), 0o644)
		},
		"file replaced by a folder": func(dir string) error {
			p := filepath.Join(dir, "model_index.json")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Mkdir(p, 0o755)
		},
		"folder replaced by a file": func(dir string) error {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			return os.WriteFile(dir, []byte("x"), 0o644)
		},
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			tree, root := testTree(), t.TempDir()
			dir, err := install(tree, root)
			if err != nil {
				t.Fatal(err)
			}
			if err := fn(dir); err != nil {
				t.Fatal(err)
			}
			m, _ := readManifest(tree)
			if m.verify(dir) == nil {
				t.Fatal("verify found nothing wrong with the damaged install")
			}
			again, err := install(tree, root)
			if err != nil || again != dir {
				t.Fatalf("repair: %q, %v; want %q", again, err, dir)
			}
			sameTree(t, tree, dir)
			if l := leftovers(t, root); len(l) > 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

func TestInstallConcurrent(t *testing.T) {
	tree, root := testTree(), t.TempDir()
	for round, prep := range []func(){
		func() {}, // nothing installed yet
		func() { // damaged
			m, _ := readManifest(tree)
			os.Truncate(filepath.Join(root, m.id(), "tokenizer", "vocab.json"), 1)
		},
	} {
		prep()
		var wg sync.WaitGroup
		dirs := make([]string, 8)
		errs := make([]error, len(dirs))
		for i := range dirs {
			wg.Go(func() { dirs[i], errs[i] = install(tree, root) })
		}
		wg.Wait()
		for i := range dirs {
			if errs[i] != nil || dirs[i] != dirs[0] {
				t.Fatalf("round %d: install %d: %q, %v (first: %q)", round, i, dirs[i], errs[i], dirs[0])
			}
		}
		sameTree(t, tree, dirs[0])
		if l := leftovers(t, root); len(l) > 0 {
			t.Errorf("round %d: left behind: %v", round, l)
		}
	}
}

// TestInstallConcurrentProcesses runs installs of one tree in several
// processes at once (this test binary, in helperInstall mode).
func TestInstallConcurrentProcesses(t *testing.T) {
	if os.Getenv("ASSETS_INSTALL_ROOT") != "" {
		t.Skip("helper process")
	}
	root := t.TempDir()
	cmds := make([]*exec.Cmd, 4)
	outs := make([]bytes.Buffer, len(cmds))
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestInstallHelperProcess$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), "ASSETS_INSTALL_ROOT="+root)
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i].String())
		}
	}
	m, _ := readManifest(testTree())
	sameTree(t, testTree(), filepath.Join(root, m.id()))
	if l := leftovers(t, root); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

// TestInstallHelperProcess is one process of TestInstallConcurrentProcesses.
func TestInstallHelperProcess(t *testing.T) {
	root := os.Getenv("ASSETS_INSTALL_ROOT")
	if root == "" {
		t.Skip("run by TestInstallConcurrentProcesses")
	}
	for range 20 {
		if _, err := install(testTree(), root); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInstallRefusesAnEmptyTree(t *testing.T) {
	if _, err := install(fstest.MapFS{}, t.TempDir()); err == nil {
		t.Fatal("installed an empty tree")
	}
}
