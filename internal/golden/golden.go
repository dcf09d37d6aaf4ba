// Package golden gives tests access to the reference test vectors in
// ../shared/golden (or $PERFUSION_GOLDEN_DIR) and their tolerances.
//
// Where the folder is absent a test skips with a clear message, except
// under CI (CI=true), where its absence is a failure: golden tests can never
// pass by skipping there.
package golden

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// EnvDir names the environment variable that overrides the folder.
const EnvDir = "PERFUSION_GOLDEN_DIR"

// Dir returns the golden folder, or skips (fails under CI) if absent.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		dir = defaultDir()
	}
	if st, err := os.Stat(filepath.Join(dir, "tolerances.json")); err != nil || st.IsDir() {
		msg := fmt.Sprintf("golden vectors not found at %q (set %s, or place the shared/ folder beside the checkout)", dir, EnvDir)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// defaultDir is ../shared/golden relative to the module root.
func defaultDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return filepath.Join("..", "shared", "golden")
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "golden")
		}
		if filepath.Dir(d) == d {
			return filepath.Join("..", "shared", "golden")
		}
	}
}

// Path returns the path of a golden file, skipping as Dir does.
func Path(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(Dir(t), name)
}

// Open opens a golden safetensors file; it is closed when the test ends.
func Open(t testing.TB, name string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(Path(t, name))
	if err != nil {
		t.Fatalf("open golden %s: %v", name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// JSON decodes a golden JSON file into v.
func JSON(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(Path(t, name))
	if err != nil {
		t.Fatalf("read golden %s: %v", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode golden %s: %v", name, err)
	}
}

// Float32 reads one tensor of a golden file as float32.
func Float32(t testing.TB, f *safetensors.File, name string) ([]float32, []int) {
	t.Helper()
	v, shape, err := f.Float32(name)
	if err != nil {
		t.Fatalf("golden tensor %s: %v", name, err)
	}
	return v, shape
}

// Tol is an elementwise tolerance: |got-want| <= Atol + Rtol*|want|.
type Tol struct{ Atol, Rtol float64 }

// Tolerance returns the first tolerances.json entry matching file and
// tensor; it fails the test if none matches.
func Tolerance(t testing.TB, file, tensor string) Tol {
	t.Helper()
	var doc struct {
		Entries []struct {
			File    string  `json:"file"`
			Tensors string  `json:"tensors"`
			Atol    float64 `json:"atol"`
			Rtol    float64 `json:"rtol"`
		} `json:"entries"`
	}
	JSON(t, "tolerances.json", &doc)
	for _, e := range doc.Entries {
		if e.File != file {
			continue
		}
		if ok, _ := path.Match(e.Tensors, tensor); ok {
			return Tol{e.Atol, e.Rtol}
		}
	}
	t.Fatalf("tolerances.json has no entry for %s / %s", file, tensor)
	return Tol{}
}

// Check compares got with want elementwise under tol and reports the worst
// element. It returns whether all elements are within tolerance.
func Check(t testing.TB, what string, got, want []float32, tol Tol) bool {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d values, want %d", what, len(got), len(want))
		return false
	}
	if len(want) == 0 {
		t.Errorf("%s: the golden tensor is empty; nothing would be checked", what)
		return false
	}
	worst, worstAt, bad := 0.0, -1, 0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		lim := tol.Atol + tol.Rtol*math.Abs(float64(want[i]))
		if !(d <= lim) { // also catches NaN
			bad++
			if worstAt < 0 || d > worst || math.IsNaN(d) {
				worst, worstAt = d, i
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance (atol %g, rtol %g); worst at %d: got %g want %g (diff %g)",
			what, bad, len(want), tol.Atol, tol.Rtol, worstAt, got[worstAt], want[worstAt], worst)
		return false
	}
	return true
}

// sd15Name is the file name of the SD1.5 tensor list.
const sd15Name = "sd15_tensors.txt"

// SD15Tensors returns the text of sd15_tensors.txt (every tensor name,
// dtype and shape of a real SD1.5 checkpoint), looked for inside the golden
// folder and then beside it. It skips where neither has it, and fails under
// CI.
func SD15Tensors(t testing.TB) string {
	t.Helper()
	b, err := readFirst(sd15Paths(Dir(t)))
	if err != nil {
		msg := fmt.Sprintf("SD1.5 tensor list not found: %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return string(b)
}

// sd15Paths lists where the SD1.5 tensor list may lie for the golden
// folder dir, in the order they are tried.
func sd15Paths(dir string) []string {
	return []string{filepath.Join(dir, sd15Name), filepath.Join(filepath.Dir(dir), sd15Name)}
}

// readFirst reads the first of paths that exists. Where none does, the
// error names them all.
func readFirst(paths []string) ([]byte, error) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return b, err
		}
	}
	return nil, fmt.Errorf("none of %q exists", paths)
}

// CopyDir copies the folder src (a golden model folder, say) to dst, so
// that a test may change or damage its copy.
func CopyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// MergeFiles writes the tensors of the golden safetensors files names into
// one single-file checkpoint, alone in a new temporary folder (no
// vocabulary or config beside it), and returns its path: the tiny golden
// model as a user's single .safetensors file, say.
func MergeFiles(t testing.TB, names []string) string {
	t.Helper()
	var entries []safetensors.Entry
	src := map[string]*safetensors.File{}
	for _, name := range names {
		f := Open(t, name)
		for _, n := range f.Names() {
			info, _ := f.Info(n)
			if _, dup := src[n]; dup {
				t.Fatalf("tensor %s in two golden files", n)
			}
			src[n] = f
			entries = append(entries, safetensors.Entry{Name: n, DType: info.DType, Shape: info.Shape})
		}
	}
	out := filepath.Join(t.TempDir(), "tiny_merged.safetensors")
	err := safetensors.WriteFile(out, entries, map[string]string{"format": "pt"}, func(e safetensors.Entry, dst []byte) error {
		b, _, err := src[e.Name].Bytes(e.Name)
		if err != nil {
			return err
		}
		if len(b) != len(dst) {
			return fmt.Errorf("%s: %d bytes, want %d", e.Name, len(b), len(dst))
		}
		copy(dst, b)
		return nil
	})
	if err != nil {
		t.Fatalf("merge %v: %v", names, err)
	}
	return out
}
