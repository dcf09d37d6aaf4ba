package settings

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadMissingGivesDefaults(t *testing.T) {
	s, err := Load(filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	if s.Threads != 0 || s.DataDir != "" || len(s.RecentModels) != 0 {
		t.Fatalf("defaults = %+v", s)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", FileName)
	want := Settings{Threads: 3, DataDir: t.TempDir(), DefaultSampler: "euler_a", PreviewSide: 320, PreviewSteps: 6, RecentModels: []string{"/m/a.safetensors", "/m/b"}}
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want.Version = version
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestLoadDamagedNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	os.WriteFile(path, []byte(`{"threads": 2,`), 0o644)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("err = %v", err)
	}
	st, err := Open(path)
	if err == nil || st == nil || st.Get().Threads != 0 {
		t.Fatalf("Open of a damaged file: store %v, err %v; want defaults and the error", st, err)
	}
}

func TestValidate(t *testing.T) {
	for _, s := range []Settings{{Threads: -1}, {Threads: 5000}, {DataDir: "relative/dir"}, {PreviewSide: 10}, {PreviewSteps: -1}, {PreviewSteps: 151}} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

func TestAddRecent(t *testing.T) {
	var s Settings
	for i := range MaxRecent + 3 {
		s.AddRecent(filepath.Join("/m", string(rune('a'+i))))
	}
	if len(s.RecentModels) != MaxRecent || s.RecentModels[0] != "/m/k" {
		t.Fatalf("recent = %v", s.RecentModels)
	}
	s.AddRecent("/m/e") // already listed: moves to the front, no duplicate
	if s.RecentModels[0] != "/m/e" || len(s.RecentModels) != MaxRecent {
		t.Fatalf("recent = %v", s.RecentModels)
	}
	n := 0
	for _, p := range s.RecentModels {
		if p == "/m/e" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("/m/e listed %d times", n)
	}
}

// A failed or invalid update changes nothing, on disk or in memory.
func TestStoreUpdateIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var seen []Settings
	st.OnChange(func(s Settings) { seen = append(seen, s) })
	if err := st.Update(func(s *Settings) { s.Threads = 2; s.AddRecent("/m/x") }); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	if err := st.Update(func(s *Settings) { s.Threads = -4 }); err == nil {
		t.Fatal("invalid update accepted")
	}
	// Make the rename fail: the settings path becomes a non-empty folder.
	os.Remove(path)
	os.MkdirAll(filepath.Join(path, "block"), 0o755)
	if err := st.Update(func(s *Settings) { s.Threads = 7 }); err == nil {
		t.Fatal("update over a folder succeeded")
	}
	if got := st.Get(); got.Threads != 2 || len(got.RecentModels) != 1 {
		t.Fatalf("settings changed by failed updates: %+v", got)
	}
	if len(seen) != 1 {
		t.Fatalf("OnChange ran %d times, want 1", len(seen))
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
	// Restoring the file: the first save's content was complete JSON.
	os.RemoveAll(path)
	os.WriteFile(path, before, 0o644)
	if s, err := Load(path); err != nil || s.Threads != 2 {
		t.Fatalf("reload: %+v, %v", s, err)
	}
}

func TestGetReturnsCopy(t *testing.T) {
	st, _ := Open("")
	st.Update(func(s *Settings) { s.AddRecent("/a") })
	s := st.Get()
	s.RecentModels[0] = "/changed"
	if st.Get().RecentModels[0] != "/a" {
		t.Fatal("Get shares its slice with the store")
	}
}
