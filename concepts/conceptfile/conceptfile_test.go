package conceptfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sd15Layers are SD1.5's 16 cross-attention layers and their output sizes
// (PERFUSION.md §2).
func sd15Layers() []LayerInfo {
	var ls []LayerInfo
	add := func(name string, out int) {
		ls = append(ls, LayerInfo{Name: name + ".transformer_blocks.0.attn2", Out: out})
	}
	for _, p := range []struct {
		i, out int
	}{{1, 320}, {2, 320}, {4, 640}, {5, 640}, {7, 1280}, {8, 1280}} {
		add(fmt.Sprintf("input_blocks.%d.1", p.i), p.out)
	}
	add("middle_block.1", 1280)
	for i, out := range []int{1280, 1280, 1280, 640, 640, 640, 320, 320, 320} {
		add(fmt.Sprintf("output_blocks.%d.1", i+3), out)
	}
	return ls
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// testConcept builds a concept with random tensors of the given shapes.
func testConcept(t testing.TB, d int, layers []LayerInfo, thumb bool) *Concept {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	c := &Concept{
		Header: Header{
			Name: "hugsy", Superclass: "teddy", SuperclassToken: 16452,
			Beta: DefaultBeta, Tau: DefaultTau,
			BaseModel: "6ce0161689", Covariance: "c0ffee12345678",
			Training: []byte(`{"preset":"paper","steps":400,"batch":16,"size":512,"lr_embedding":0.006,"lr_value":0.03}`),
			Created:  "2026-12-05T17:30:00Z",
		},
		Embedding:   randVec(r, d),
		TargetInput: randVec(r, d),
	}
	for _, l := range layers {
		c.Layers = append(c.Layers, Layer{Name: l.Name, OutK: randVec(r, l.Out), OutV: randVec(r, l.Out)})
	}
	if thumb {
		img := image.NewNRGBA(image.Rect(0, 0, 300, 200))
		for i := range img.Pix {
			img.Pix[i] = uint8(r.IntN(256)) // noise: the worst case for PNG size
		}
		p, err := Thumbnail(img)
		if err != nil {
			t.Fatal(err)
		}
		c.Thumbnail = p
	}
	return c
}

func TestRoundTripSD15(t *testing.T) {
	layers := sd15Layers()
	sum := 0
	for _, l := range layers {
		sum += l.Out
	}
	if len(layers) != 16 || sum != 12480 {
		t.Fatalf("SD1.5 layers: %d layers, %d outputs; want 16, 12480", len(layers), sum)
	}
	c := testConcept(t, 768, layers, true)
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	// 26,496 floats of tensors plus header and an ≤ 8 KB thumbnail.
	if len(data) > 120_000 {
		t.Errorf("SD1.5 concept file is %d bytes, want ≤ 120,000", len(data))
	}
	t.Logf("SD1.5 concept file: %d bytes (thumbnail %d)", len(data), len(c.Thumbnail))
	got, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != c.Name || got.Superclass != c.Superclass || got.SuperclassToken != c.SuperclassToken ||
		got.Beta != c.Beta || got.Tau != c.Tau || got.BaseModel != c.BaseModel || got.Covariance != c.Covariance ||
		got.Created != c.Created || !bytes.Equal(got.Training, c.Training) || got.Dim != 768 {
		t.Errorf("header: got %+v, want %+v", got.Header, c.Header)
	}
	if !slices.Equal(got.Embedding, c.Embedding) || !slices.Equal(got.TargetInput, c.TargetInput) {
		t.Error("embedding or i* differ")
	}
	if len(got.Layers) != len(c.Layers) {
		t.Fatalf("%d layers, want %d", len(got.Layers), len(c.Layers))
	}
	for i := range got.Layers {
		g, w := got.Layers[i], c.Layers[i]
		if g.Name != w.Name || !slices.Equal(g.OutK, w.OutK) || !slices.Equal(g.OutV, w.OutV) {
			t.Errorf("layer %d (%s) differs", i, w.Name)
		}
	}
	if !bytes.Equal(got.Thumbnail, c.Thumbnail) {
		t.Error("thumbnail differs")
	}
	h, err := ReadHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if h.Embedding != nil || h.Name != "hugsy" || len(h.LayerInfo) != 16 || !bytes.Equal(h.Thumbnail, c.Thumbnail) {
		t.Errorf("ReadHeader: %+v", h.Header)
	}
	// ReadHeader needs only the bytes before the tensors.
	cut := len(data) - 4*h.Floats() - 8
	if _, err := ReadHeader(bytes.NewReader(data[:cut])); err != nil {
		t.Errorf("ReadHeader without the tensor section: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.concept")
	c := testConcept(t, 8, []LayerInfo{{"l0", 4}, {"l1", 6}}, false)
	if err := WriteFile(p, c); err != nil {
		t.Fatal(err)
	}
	c.Beta = 0.6
	if err := WriteFile(p, c); err != nil { // replaces
		t.Fatal(err)
	}
	got, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Beta != 0.6 {
		t.Errorf("beta %v after rewrite, want 0.6", got.Beta)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("folder holds %d entries after two writes, want 1 (no temporary files left)", len(ents))
	}
	// a failing write leaves the old file
	bad := *c
	bad.Embedding = append([]float32(nil), c.Embedding...)
	bad.Embedding[3] = float32(math.NaN())
	if err := WriteFile(p, &bad); err == nil || !strings.Contains(err.Error(), "embedding[3]") {
		t.Errorf("NaN in embedding: err = %v", err)
	}
	if _, err := ReadFile(p); err != nil {
		t.Errorf("old file after a failed write: %v", err)
	}
}

func TestEncodeRefusesBadConcepts(t *testing.T) {
	cases := map[string]func(c *Concept){
		"bad name":        func(c *Concept) { c.Name = "my concept" },
		"leading dash":    func(c *Concept) { c.Name = "-x" },
		"no superclass":   func(c *Concept) { c.Superclass = "" },
		"zero tau":        func(c *Concept) { c.Tau = 0 },
		"inf beta":        func(c *Concept) { c.Beta = float32(math.Inf(1)) },
		"i* size":         func(c *Concept) { c.TargetInput = c.TargetInput[:3] },
		"no layers":       func(c *Concept) { c.Layers = nil },
		"K/V sizes":       func(c *Concept) { c.Layers[1].OutV = c.Layers[1].OutV[:2] },
		"unnamed layer":   func(c *Concept) { c.Layers[0].Name = "" },
		"inf in o*_V":     func(c *Concept) { c.Layers[1].OutV[0] = float32(math.Inf(-1)) },
		"bad training":    func(c *Concept) { c.Training = []byte("{steps") },
		"thumbnail kind":  func(c *Concept) { c.Thumbnail = []byte("GIF89a....") },
		"thumbnail bytes": func(c *Concept) { c.Thumbnail = append([]byte(pngSignature), make([]byte, MaxThumbnailBytes)...) },
	}
	for name, mutate := range cases {
		c := testConcept(t, 8, []LayerInfo{{"l0", 4}, {"l1", 6}}, false)
		mutate(c)
		if _, err := Encode(c); err == nil {
			t.Errorf("%s: Encode succeeded", name)
		}
	}
}

func TestCorruptionDetected(t *testing.T) {
	c := testConcept(t, 16, []LayerInfo{{"l0", 8}, {"l1", 12}}, true)
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	// every truncation is an error
	for n := range len(data) {
		if _, err := Decode(data[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(data))
		}
	}
	// every single-bit flip is an error (checksums, magic, version, lengths)
	for i := range data {
		bad := slices.Clone(data)
		bad[i] ^= 1 << (i % 8)
		if _, err := Decode(bad); err == nil {
			t.Fatalf("bit flip at byte %d: no error", i)
		}
	}
	if _, err := Decode(append(slices.Clone(data), 0)); err == nil {
		t.Error("trailing byte: no error")
	}
}

func TestVersionAndMagicErrors(t *testing.T) {
	c := testConcept(t, 4, []LayerInfo{{"l0", 2}}, false)
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint16{0, FormatVersion + 1} {
		bad := slices.Clone(data)
		binary.LittleEndian.PutUint16(bad[len(Magic):], v)
		_, err := Decode(bad)
		var ve *VersionError
		if !errors.As(err, &ve) || ve.Got != int(v) {
			t.Fatalf("version %d: err = %v", v, err)
		}
		if !strings.Contains(err.Error(), "Perfusion Studio") {
			t.Errorf("version %d: message does not say how to fix it: %v", v, err)
		}
	}
	_, err = Decode([]byte("PK\x03\x04 this is a zip file, not a concept"))
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "not a Perfusion concept file") {
		t.Errorf("bad magic: err = %v", err)
	}
}

func TestHeaderLimitsCheckedBeforeAllocating(t *testing.T) {
	// A header claiming huge layers is refused before the tensor section is read.
	c := testConcept(t, 4, []LayerInfo{{"l0", 2}}, false)
	data, _ := Encode(c)
	hlen := binary.LittleEndian.Uint32(data[prefixLen:])
	head := data[prefixLen+4 : prefixLen+4+int(hlen)]
	for _, tc := range []struct{ from, to string }{
		{`"out":2`, `"out":1000000000`},
		{`"dim":4`, `"dim":-4`},
		{`"dim":4`, `"dim":99999999`},
	} {
		h2 := bytes.Replace(head, []byte(tc.from), []byte(tc.to), 1)
		var b bytes.Buffer
		b.Write(data[:prefixLen])
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(h2))))
		b.Write(h2)
		b.Write(binary.LittleEndian.AppendUint32(nil, crcOf(h2)))
		b.Write(data[prefixLen+8+int(hlen):])
		if _, err := Decode(b.Bytes()); err == nil {
			t.Errorf("header with %s: no error", tc.to)
		}
	}
	// a length field beyond the limit is refused without allocating it
	bad := slices.Clone(data)
	binary.LittleEndian.PutUint32(bad[prefixLen:], 0xFFFFFFF0)
	if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("huge header length: err = %v", err)
	}
}

func TestCheckBase(t *testing.T) {
	c := testConcept(t, 4, []LayerInfo{{"l0", 2}}, false)
	if err := c.CheckBase("6CE0161689"); err != nil {
		t.Errorf("same hash (other case): %v", err)
	}
	err := c.CheckBase("0123456789")
	if !errors.Is(err, ErrBaseMismatch) {
		t.Fatalf("other model: err = %v", err)
	}
	for _, want := range []string{`"hugsy"`, "6ce0161689", "0123456789", "train"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if err := c.CheckCovariance("c0ffee12345678"); err != nil {
		t.Error(err)
	}
	if err := c.CheckCovariance("other"); !errors.Is(err, ErrBaseMismatch) {
		t.Errorf("other C: err = %v", err)
	}
	c.BaseModel = ""
	if err := c.CheckBase(""); err == nil {
		t.Error("a concept without a base hash matched")
	}
}

func TestThumbnail(t *testing.T) {
	img := image.NewRGBA(image.Rect(10, 20, 410, 220))
	for y := 20; y < 220; y++ {
		for x := 10; x < 410; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 100, 255})
		}
	}
	p, err := Thumbnail(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > MaxThumbnailBytes {
		t.Fatalf("%d bytes", len(p))
	}
	got, _, err := image.Decode(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	if b := got.Bounds(); b.Dx() != ThumbnailSide || b.Dy() != ThumbnailSide/2 {
		t.Errorf("thumbnail %v, want %dx%d (aspect kept)", b, ThumbnailSide, ThumbnailSide/2)
	}
	// Area average: the first thumbnail pixel averages x in [10,16), y in [20,26).
	r, g, b, _ := got.At(0, 0).RGBA()
	if r>>8 != 12 || g>>8 != 22 || b>>8 != 100 {
		t.Errorf("pixel (0,0) = %d,%d,%d, want 12,22,100", r>>8, g>>8, b>>8)
	}
	if _, err := Thumbnail(image.NewRGBA(image.Rectangle{})); err == nil {
		t.Error("empty image: no error")
	}
}

func crcOf(b []byte) uint32 { return testCRC(b) }
