package export

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"testing"
)

func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	c := Composition{Prompt: "a <fox>", Steps: 4, CFG: 7, Sampler: "euler_a", Width: 4, Height: 4}
	data, err := EncodeComposition(img, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestConceptChunksRoundTrip(t *testing.T) {
	base := testPNG(t)
	files := [][]byte{bytes.Repeat([]byte("concept one "), 1000), []byte("two")}
	data, err := AddConcepts(base, files)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Concepts(data, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0], files[0]) || !bytes.Equal(got[1], files[1]) {
		t.Fatalf("got %d files back, want the 2 written", len(got))
	}
	if len(data) > len(base)+2000 {
		t.Errorf("%d bytes added for 12 KB of repetitive text: not compressed", len(data)-len(base))
	}
	// The image and its settings still read.
	if _, err := ReadComposition(data, nil); err != nil {
		t.Fatal(err)
	}
	if none, err := Concepts(base, 1<<20); err != nil || len(none) != 0 {
		t.Fatalf("plain PNG: %d concepts, %v", len(none), err)
	}
}

func TestConceptChunksHostile(t *testing.T) {
	base := testPNG(t)
	bomb := make([]byte, 1<<20) // compresses to ~1 KB
	data, err := AddConcepts(base, [][]byte{bomb})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Concepts(data, 1000); !errors.Is(err, ErrBadConceptChunk) {
		t.Errorf("decompressing past the limit: err = %v", err)
	}
	// Flip one byte of the chunk's data: the checksum catches it.
	i := bytes.Index(data, []byte(ConceptChunk))
	bad := bytes.Clone(data)
	bad[i+10] ^= 0xff
	if _, err := Concepts(bad, 2<<20); !errors.Is(err, ErrBadConceptChunk) {
		t.Errorf("corrupt chunk: err = %v", err)
	}
	// A chunk claiming more than the limit is refused before reading.
	huge := bytes.Clone(data)
	binary.BigEndian.PutUint32(huge[i-4:], MaxConceptChunkBytes+1)
	huge = append(huge, make([]byte, MaxConceptChunkBytes+16)...)
	if _, err := Concepts(huge, 2<<20); !errors.Is(err, ErrBadConceptChunk) {
		t.Errorf("oversized chunk: err = %v", err)
	}
	// Valid checksum over garbage that is not zlib.
	junk, _ := AddConcepts(base, nil)
	junk = append(junk[:len(junk)-12:len(junk)-12], append(makeChunk(ConceptChunk, []byte("not zlib")), junk[len(junk)-12:]...)...)
	if _, err := Concepts(junk, 1<<20); !errors.Is(err, ErrBadConceptChunk) {
		t.Errorf("not zlib: err = %v", err)
	}
	if _, err := AddConcepts([]byte("nope"), [][]byte{{1}}); err == nil {
		t.Error("AddConcepts on a non-PNG: no error")
	}
}
