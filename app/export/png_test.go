package export

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testImage() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 5, 3))
	for y := 0; y < 3; y++ {
		for x := 0; x < 5; x++ {
			img.Set(x, y, color.RGBA{uint8(40 * x), uint8(80 * y), 7, 255})
		}
	}
	return img
}

func TestParametersFormat(t *testing.T) {
	s := Settings{Prompt: "a cat", NegativePrompt: "blurry", Steps: 20, Sampler: "Euler a",
		CFGScale: 7.5, Seed: 42, Width: 512, Height: 768, ModelName: "v1-5"}
	want := "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x768, Model: v1-5"
	if got := s.Parameters(); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	s.NegativePrompt, s.CFGScale, s.ModelName = "", 7, ""
	if got := s.Parameters(); strings.Contains(got, "Negative") || !strings.Contains(got, "CFG scale: 7,") {
		t.Fatalf("got %q", got)
	}
}

func TestEncodePNGRoundTrip(t *testing.T) {
	for _, text := range []string{"plain ascii\nSteps: 4", "caf\u00e9 latin1", "emoji \U0001F431 and \u732b"} {
		data, err := EncodePNG(testImage(), ParametersKey, text)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data)) // checks every CRC
		if err != nil {
			t.Fatalf("%q: decode: %v", text, err)
		}
		if img.Bounds() != testImage().Bounds() || img.At(4, 2) != testImage().At(4, 2) {
			t.Fatalf("%q: pixels changed", text)
		}
		chunks, err := TextChunks(data)
		if err != nil {
			t.Fatal(err)
		}
		if chunks[ParametersKey] != text {
			t.Fatalf("text chunk: got %q want %q", chunks[ParametersKey], text)
		}
	}
}

func TestSavePNGAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.png")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SavePNG(path, testImage(), Settings{Prompt: "x", Steps: 1, Sampler: "DDIM", Width: 5, Height: 3}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if _, err := png.Decode(bytes.NewReader(data)); err != nil {
		t.Fatalf("saved file is not a png: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	// A folder that does not exist fails cleanly and leaves nothing.
	if err := SavePNG(filepath.Join(dir, "missing", "x.png"), testImage(), Settings{}); err == nil {
		t.Fatal("want an error for a missing folder")
	}
}
