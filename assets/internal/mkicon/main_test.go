package main

import (
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestCommittedIconIsCurrent fails when assets/icon.png is not what this
// program draws; regenerate with `go run ./assets/internal/mkicon -o assets/icon.png`.
func TestCommittedIconIsCurrent(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "icon.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	committed, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode assets/icon.png: %v", err)
	}
	got := image.NewNRGBA(committed.Bounds())
	draw.Draw(got, got.Bounds(), committed, committed.Bounds().Min, draw.Src)

	want := render(512)
	if got.Bounds() != want.Bounds() {
		t.Fatalf("assets/icon.png is %v, mkicon draws %v", got.Bounds(), want.Bounds())
	}
	for i := range want.Pix {
		if got.Pix[i] != want.Pix[i] {
			p := i / 4
			t.Fatalf("assets/icon.png differs from mkicon's drawing at pixel (%d,%d); "+
				"regenerate: go run ./assets/internal/mkicon -o assets/icon.png", p%512, p/512)
		}
	}
}

func TestRenderHasTransparentCornersAndOpaqueCentre(t *testing.T) {
	img := render(64)
	if a := img.NRGBAAt(0, 0).A; a != 0 {
		t.Errorf("corner alpha = %d, want 0", a)
	}
	if a := img.NRGBAAt(32, 20).A; a != 255 {
		t.Errorf("orb alpha = %d, want 255", a)
	}
}
