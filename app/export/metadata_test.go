package export

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func testComposition() Composition {
	return Composition{
		Prompt: "a watercolor fox, \u732b, \"quoted\"", Negative: "blurry\nsecond line", Seed: 1<<40 + 5, Steps: 23,
		CFG: 6.5, Sampler: "dpmpp_2m_karras", Width: 512, Height: 768, ClipSkip: 2,
		Model: "v1-5", ModelHash: "0123456789",
		Concepts: []ConceptUse{{Name: "teddy", Hash: "abc", Beta: 0.7, Tau: 0.1, Locking: "global"}},
	}
}

func label(name string) string { return strings.ToUpper(name) }

func unlabel(s string) (string, error) { return strings.ToLower(s), nil }

func TestCompositionRoundTrip(t *testing.T) {
	want := testComposition()
	data, err := EncodeComposition(testImage(), want, label)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data)) // checks every CRC
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != testImage().Bounds() {
		t.Fatal("pixels changed")
	}
	got, err := ReadComposition(data, unlabel)
	if err != nil {
		t.Fatal(err)
	}
	want.Version = CompositionVersion
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	chunks, _ := TextChunks(data)
	params := chunks[ParametersKey]
	for _, s := range []string{"Steps: 23", "Sampler: DPMPP_2M_KARRAS", "Seed: 1099511627781", "Size: 512x768", "Clip skip: 2", "Model hash: 0123456789"} {
		if !strings.Contains(params, s) {
			t.Errorf("parameters %q lack %q", params, s)
		}
	}
}

// A PNG with only the web UI's parameters (from another tool) still gives
// its settings.
func TestReadParametersOnly(t *testing.T) {
	want := testComposition()
	want.Concepts = nil
	data, err := EncodePNG(testImage(), ParametersKey, want.Settings(label).Parameters())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadComposition(data, unlabel)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// Empty prompt, no negative.
	want = Composition{Steps: 4, Sampler: "ddim", CFG: 1, Seed: 3, Width: 64, Height: 64}
	got, err = ParseParameters(want.Settings(nil).Parameters(), nil)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v\nwant %+v", got, err, want)
	}
}

func TestReadCompositionBadInput(t *testing.T) {
	plain, _ := EncodePNG(testImage(), "", "")
	if _, err := ReadComposition(plain, nil); !errors.Is(err, ErrNoSettings) {
		t.Errorf("plain PNG: %v, want ErrNoSettings", err)
	}
	other, _ := EncodePNG(testImage(), "Comment", "hello")
	if _, err := ReadComposition(other, nil); !errors.Is(err, ErrNoSettings) {
		t.Errorf("PNG with a comment: %v, want ErrNoSettings", err)
	}
	bad, _ := EncodePNG(testImage(), CompositionKey, "{not json")
	if _, err := ReadComposition(bad, nil); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged JSON: %v", err)
	}
	newer, _ := EncodePNG(testImage(), CompositionKey, fmt.Sprintf(`{"version": %d, "steps": 2, "size": [8, 8]}`, CompositionVersion+1))
	if _, err := ReadComposition(newer, nil); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer version: %v", err)
	}
	badSteps, _ := EncodePNG(testImage(), ParametersKey, "cat\nSteps: many, Seed: 1")
	if _, err := ReadComposition(badSteps, nil); err == nil || !strings.Contains(err.Error(), "Steps") {
		t.Errorf("bad steps: %v", err)
	}
	dir := t.TempDir()
	txt := filepath.Join(dir, "notes.png")
	os.WriteFile(txt, []byte("hello, not a png"), 0o644)
	if _, err := ReadCompositionFile(txt, nil); err == nil || !strings.Contains(err.Error(), "not a PNG") {
		t.Errorf("text file: %v", err)
	}
	if _, err := ReadCompositionFile(filepath.Join(dir, "missing.png"), nil); err == nil {
		t.Error("missing file: no error")
	}
}

func TestSaveCompositionFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.png")
	c := testComposition()
	if err := SaveComposition(path, testImage(), c, nil); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCompositionFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seed != c.Seed || got.Prompt != c.Prompt || len(got.Concepts) != 1 {
		t.Fatalf("got %+v", got)
	}
}

func TestConceptParameters(t *testing.T) {
	if got := ConceptParameters(nil, "exact"); got != nil {
		t.Errorf("no concepts: %q", got)
	}
	c := Composition{Prompt: "a <tubby> and a <pot>", Steps: 4, Width: 64, Height: 64, ConceptMulti: "exact",
		Concepts: []ConceptUse{{Name: "tubby", Hash: "abc", Beta: 0.7, Tau: 0.15, Locking: "global"}, {Name: "pot", Beta: 0.55, Tau: 0.2}}}
	got := c.Settings(nil).Parameters()
	for _, want := range []string{`Concepts: "tubby: beta 0.7 tau 0.15 locking global hash abc, pot: beta 0.55 tau 0.2"`, "Concept multi: exact"} {
		if !strings.Contains(got, want) {
			t.Errorf("parameters lack %q:\n%s", want, got)
		}
	}
}
