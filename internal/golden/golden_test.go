package golden

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// recorder captures failures instead of failing the real test.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}

func TestCheck(t *testing.T) {
	tol := Tol{Atol: 1e-3, Rtol: 1e-2}
	cases := []struct {
		name      string
		got, want []float32
		ok        bool
	}{
		{"equal", []float32{1, 2}, []float32{1, 2}, true},
		{"within atol+rtol", []float32{1.0109, -2}, []float32{1, -2}, true},
		{"outside", []float32{1.02, 2}, []float32{1, 2}, false},
		{"NaN", []float32{float32(math.NaN())}, []float32{1}, false},
		{"length", []float32{1}, []float32{1, 2}, false},
		{"empty golden", nil, nil, false},
	}
	for _, c := range cases {
		r := &recorder{TB: t}
		if got := Check(r, c.name, c.got, c.want, tol); got != c.ok || r.failed == c.ok {
			t.Errorf("%s: Check = %v (failed %v), want %v", c.name, got, r.failed, c.ok)
		}
	}
}

// The SD1.5 tensor list is read from inside the golden folder first, then
// from beside it.
func TestSD15TensorsPlaces(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "golden")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tolerances.json"), []byte(`{"entries": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvDir, dir)
	t.Setenv("CI", "")

	// Neither place: the test skips.
	skipped := true
	t.Run("absent", func(t *testing.T) {
		SD15Tensors(t)
		skipped = false
	})
	if !skipped {
		t.Error("SD15Tensors did not skip with no tensor list")
	}

	write := func(p, text string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, sd15Name), "beside")
	if got := SD15Tensors(t); got != "beside" {
		t.Errorf("beside the folder: got %q", got)
	}
	write(filepath.Join(dir, sd15Name), "inside")
	if got := SD15Tensors(t); got != "inside" {
		t.Errorf("inside and beside the folder: got %q, want the one inside", got)
	}
	if err := os.Remove(filepath.Join(root, sd15Name)); err != nil {
		t.Fatal(err)
	}
	if got := SD15Tensors(t); got != "inside" {
		t.Errorf("inside the folder only: got %q", got)
	}
}
