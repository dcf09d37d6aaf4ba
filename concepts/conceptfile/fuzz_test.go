package conceptfile

import (
	"bytes"
	"hash/crc32"
	"testing"
)

func testCRC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// FuzzRead feeds arbitrary bytes to the reader: it must return a concept or
// an error, never panic, and whatever it accepts must survive re-encoding.
// The seed corpus is testdata/fuzz/FuzzRead plus the files added here.
func FuzzRead(f *testing.F) {
	c := testConcept(f, 4, []LayerInfo{{"l0", 2}, {"l1", 3}}, false)
	if data, err := Encode(c); err == nil {
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		if _, herr := ReadHeader(bytes.NewReader(data)); err == nil && herr != nil {
			t.Fatalf("Decode accepted what ReadHeader refused: %v", herr)
		}
		if err != nil {
			return
		}
		again, err := Encode(got)
		if err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("decoding a re-encoded file: %v", err)
		}
	})
}
