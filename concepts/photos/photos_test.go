package photos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// halves is a w×h image whose left half is a and right half is b.
func halves(w, h int, a, b color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := a
			if x >= w/2 {
				c = b
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

var (
	red  = color.NRGBA{220, 20, 20, 255}
	blue = color.NRGBA{20, 20, 220, 255}
)

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withOrientation inserts an EXIF APP1 segment holding only the
// orientation tag (little-endian TIFF) right after a JPEG's SOI marker.
func withOrientation(jpg []byte, orient uint16) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("II*\x00")
	binary.Write(&tiff, binary.LittleEndian, uint32(8))      // first IFD offset
	binary.Write(&tiff, binary.LittleEndian, uint16(1))      // one entry
	binary.Write(&tiff, binary.LittleEndian, uint16(0x0112)) // Orientation
	binary.Write(&tiff, binary.LittleEndian, uint16(3))      // SHORT
	binary.Write(&tiff, binary.LittleEndian, uint32(1))      // count
	binary.Write(&tiff, binary.LittleEndian, orient)
	binary.Write(&tiff, binary.LittleEndian, uint16(0)) // value padding
	binary.Write(&tiff, binary.LittleEndian, uint32(0)) // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// bitWriter packs bits least significant first, as VP8L does.
type bitWriter struct {
	buf  []byte
	nbit uint
}

func (w *bitWriter) put(v uint32, n uint) {
	for i := range n {
		if w.nbit%8 == 0 {
			w.buf = append(w.buf, 0)
		}
		w.buf[len(w.buf)-1] |= byte((v>>i)&1) << (w.nbit % 8)
		w.nbit++
	}
}

// simpleCode writes a VP8L "simple" prefix code of one or two 8-bit
// symbols.
func (w *bitWriter) simpleCode(syms ...uint32) {
	w.put(1, 1) // simple code
	w.put(uint32(len(syms)-1), 1)
	w.put(1, 1) // first symbol has 8 bits
	for _, s := range syms {
		w.put(s, 8)
	}
}

// lossless2 encodes a w×h lossless WebP whose pixels have green g0 in the
// left half and g1 in the right, red r and blue b everywhere: each channel
// is a simple prefix code, so green costs one bit a pixel and the rest none.
func lossless2(w, h int, r, g0, g1, b uint8) []byte {
	var bw bitWriter
	bw.put(0x2f, 8)
	bw.put(uint32(w-1), 14)
	bw.put(uint32(h-1), 14)
	bw.put(0, 1)                          // no alpha
	bw.put(0, 3)                          // version 0
	bw.put(0, 1)                          // no transform
	bw.put(0, 1)                          // no colour cache
	bw.put(0, 1)                          // no meta prefix codes
	bw.simpleCode(uint32(g0), uint32(g1)) // green (a shorter code: g0 gets 0, g1 gets 1)
	bw.simpleCode(uint32(r))
	bw.simpleCode(uint32(b))
	bw.simpleCode(255) // alpha
	bw.simpleCode(0)   // distance
	for range h {
		for x := range w {
			bit := uint32(0)
			if x >= w/2 {
				bit = 1
			}
			bw.put(bit, 1)
		}
	}
	data := bw.buf
	var out bytes.Buffer
	chunk := len(data)
	pad := chunk & 1
	out.WriteString("RIFF")
	binary.Write(&out, binary.LittleEndian, uint32(4+8+chunk+pad))
	out.WriteString("WEBPVP8L")
	binary.Write(&out, binary.LittleEndian, uint32(chunk))
	out.Write(data)
	if pad == 1 {
		out.WriteByte(0)
	}
	return out.Bytes()
}

// near reports whether c is within tol of want on R, G and B.
func near(c color.Color, want color.NRGBA, tol int) bool {
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	d := func(a, b uint8) int { return max(int(a)-int(b), int(b)-int(a)) }
	return d(n.R, want.R) <= tol && d(n.G, want.G) <= tol && d(n.B, want.B) <= tol
}

func TestDecodeFormats(t *testing.T) {
	src := halves(40, 20, red, blue)
	cases := []struct {
		name string
		data []byte
		tol  int
		l, r color.NRGBA
	}{
		{"png", encodePNG(t, src), 0, red, blue},
		{"jpeg", encodeJPEG(t, src), 12, red, blue},
		{"webp", lossless2(40, 20, 10, 50, 200, 30), 0, color.NRGBA{10, 50, 30, 255}, color.NRGBA{10, 200, 30, 255}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Decode(bytes.NewReader(c.data), 0)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != 40 || b.Dy() != 20 {
				t.Fatalf("decoded %v, want 40x20", b)
			}
			if !near(img.At(5, 10), c.l, c.tol) || !near(img.At(35, 10), c.r, c.tol) {
				t.Errorf("pixels %v / %v, want about %v / %v", img.At(5, 10), img.At(35, 10), c.l, c.r)
			}
		})
	}
}

func TestDecodeEXIFOrientation(t *testing.T) {
	jpg := encodeJPEG(t, halves(40, 20, red, blue)) // red left, blue right
	// 6: rotate 90° clockwise to display, so left becomes top.
	// 8: rotate 90° counter-clockwise, so left becomes bottom.
	// 3: rotate 180°, so left becomes right.
	for _, c := range []struct {
		orient           uint16
		w, h             int
		at1, at2         image.Point
		want1, wantColor color.NRGBA
	}{
		{6, 20, 40, image.Pt(10, 5), image.Pt(10, 35), red, blue},
		{8, 20, 40, image.Pt(10, 5), image.Pt(10, 35), blue, red},
		{3, 40, 20, image.Pt(5, 10), image.Pt(35, 10), blue, red},
		{1, 40, 20, image.Pt(5, 10), image.Pt(35, 10), red, blue},
	} {
		img, err := Decode(bytes.NewReader(withOrientation(jpg, c.orient)), 0)
		if err != nil {
			t.Fatalf("orientation %d: %v", c.orient, err)
		}
		if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
			t.Fatalf("orientation %d: %v, want %dx%d", c.orient, b, c.w, c.h)
		}
		p1 := img.At(img.Bounds().Min.X+c.at1.X, img.Bounds().Min.Y+c.at1.Y)
		p2 := img.At(img.Bounds().Min.X+c.at2.X, img.Bounds().Min.Y+c.at2.Y)
		if !near(p1, c.want1, 12) || !near(p2, c.wantColor, 12) {
			t.Errorf("orientation %d: %v at %v and %v at %v", c.orient, p1, c.at1, p2, c.at2)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	big := encodePNG(t, image.NewGray(image.Rect(0, 0, 300, 200)))
	cases := []struct {
		name string
		data []byte
		max  int
		want string
	}{
		{"text", []byte("hello, not an image at all"), 0, "not a JPEG, PNG or WebP"},
		{"empty", nil, 0, "empty file"},
		{"truncated png", big[:len(big)/2], 0, "broken PNG"},
		{"too many pixels", big, 300*200 - 1, "too large"},
	}
	for _, c := range cases {
		_, err := Decode(bytes.NewReader(c.data), c.max)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if _, err := Decode(bytes.NewReader(big), 300*200); err != nil {
		t.Errorf("at exactly the pixel limit: %v", err)
	}
}

// TestDecodeHugeHeader checks that an image whose header claims a huge
// size is refused from the header, before any pixel memory is allocated.
func TestDecodeHugeHeader(t *testing.T) {
	data := encodePNG(t, image.NewGray(image.Rect(0, 0, 8, 8)))
	// IHDR width and height sit at bytes 16..24; claim 60000 x 60000
	// (the CRC is now wrong, but DecodeConfig reads only the header).
	binary.BigEndian.PutUint32(data[16:], 60000)
	binary.BigEndian.PutUint32(data[20:], 60000)
	_, err := Decode(bytes.NewReader(data), 0)
	if err == nil || !strings.Contains(err.Error(), "too large") && !strings.Contains(err.Error(), "broken") {
		t.Fatalf("got %v, want a refusal", err)
	}
}

func TestSquare(t *testing.T) {
	// 60x30: red left third... use halves on a wide image; the centre
	// square is x 15..45, half red half blue.
	img := halves(60, 30, red, blue)
	sq, err := Square(img, image.Rectangle{}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if b := sq.Bounds(); b.Dx() != 16 || b.Dy() != 16 {
		t.Fatalf("size %v", b)
	}
	if !near(sq.At(2, 8), red, 4) || !near(sq.At(13, 8), blue, 4) {
		t.Errorf("centre crop: %v %v", sq.At(2, 8), sq.At(13, 8))
	}
	// A crop box inside the red half gives an all-red view.
	sq, err = Square(img, image.Rect(0, 0, 28, 30), 8)
	if err != nil {
		t.Fatal(err)
	}
	for y := range 8 {
		for x := range 8 {
			if !near(sq.At(x, y), red, 4) {
				t.Fatalf("box crop: pixel %d,%d is %v", x, y, sq.At(x, y))
			}
		}
	}
	// A sub-image with a non-zero origin: the box is relative to it.
	sub := img.SubImage(image.Rect(30, 0, 60, 30))
	sq, err = Square(sub, image.Rectangle{}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !near(sq.At(0, 0), blue, 4) {
		t.Errorf("sub-image: %v", sq.At(0, 0))
	}
	// Large shrink (box filter first) keeps the colours.
	sq, err = Square(halves(400, 400, red, blue), image.Rectangle{}, 20)
	if err != nil {
		t.Fatal(err)
	}
	if !near(sq.At(2, 10), red, 4) || !near(sq.At(17, 10), blue, 4) {
		t.Errorf("shrink: %v %v", sq.At(2, 10), sq.At(17, 10))
	}
	for _, bad := range []image.Rectangle{image.Rect(50, 0, 70, 30), image.Rect(5, 5, 5, 9)} {
		if _, err := Square(img, bad, 8); err == nil {
			t.Errorf("box %v: no error", bad)
		}
	}
	if _, err := Square(img, image.Rectangle{}, 0); err == nil {
		t.Error("size 0: no error")
	}
}

func TestSquareFlattensAlpha(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 4, 4)) // fully transparent
	sq, err := Square(img, image.Rectangle{}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !near(sq.At(1, 1), color.NRGBA{255, 255, 255, 255}, 0) || sq.NRGBAAt(1, 1).A != 255 {
		t.Errorf("transparent pixel became %v, want opaque white", sq.NRGBAAt(1, 1))
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCollect(t *testing.T) {
	dir := t.TempDir()
	img := halves(8, 8, red, blue)
	writeFile(t, dir, "b.PNG", encodePNG(t, img))
	writeFile(t, dir, "a.jpg", encodeJPEG(t, img))
	writeFile(t, dir, "notes.txt", []byte("x"))
	writeFile(t, dir, ".hidden.png", encodePNG(t, img))
	other := writeFile(t, t.TempDir(), "photo.bin", encodePNG(t, img))
	got, err := Collect([]string{dir, other})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a.jpg"), filepath.Join(dir, "b.PNG"), other}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Path != want[i] {
			t.Errorf("photo %d: %s, want %s", i, got[i].Path, want[i])
		}
	}

	if _, err := Collect(nil); !errors.Is(err, ErrNoPhotos) {
		t.Errorf("no args: %v", err)
	}
	if _, err := Collect([]string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "holds no") {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := Collect([]string{filepath.Join(dir, "missing.png")}); err == nil {
		t.Error("missing file: no error")
	}
	many := t.TempDir()
	for i := range MaxPhotos + 1 {
		writeFile(t, many, fmt.Sprintf("p%02d.png", i), encodePNG(t, img))
	}
	if _, err := Collect([]string{many}); err == nil || !strings.Contains(err.Error(), "at most 20") {
		t.Errorf("21 photos: %v", err)
	}
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	p1 := writeFile(t, dir, "one.png", encodePNG(t, halves(32, 24, red, blue)))
	p2 := writeFile(t, dir, "two.jpg", withOrientation(encodeJPEG(t, halves(32, 24, red, blue)), 6))
	var calls []int
	views, err := Prepare(context.Background(), []Photo{{Path: p1}, {Path: p2}}, Options{Size: 8, Flip: true},
		func(done, total int) { calls = append(calls, done*10+total) })
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 4 || fmt.Sprint(calls) != "[12 22]" {
		t.Fatalf("%d views, progress %v", len(views), calls)
	}
	if views[0].Source != p1 || views[0].Flipped || !views[1].Flipped || views[2].Source != p2 {
		t.Errorf("order: %+v", views)
	}
	// one.png: red left; its mirror: red right.
	if !near(views[0].Image.At(1, 4), red, 4) || !near(views[1].Image.At(6, 4), red, 4) {
		t.Errorf("flip: %v %v", views[0].Image.At(1, 4), views[1].Image.At(6, 4))
	}
	// two.jpg is rotated upright: red on top.
	if !near(views[2].Image.At(4, 1), red, 16) || !near(views[2].Image.At(4, 6), blue, 16) {
		t.Errorf("orientation: %v %v", views[2].Image.At(4, 1), views[2].Image.At(4, 6))
	}

	bad := writeFile(t, dir, "bad.png", []byte("nope"))
	if _, err := Prepare(context.Background(), []Photo{{Path: bad}}, Options{Size: 8}, nil); err == nil || !strings.Contains(err.Error(), "bad.png") {
		t.Errorf("bad photo: %v (want the file named)", err)
	}
	if _, err := Prepare(context.Background(), nil, Options{Size: 8}, nil); !errors.Is(err, ErrNoPhotos) {
		t.Errorf("no photos: %v", err)
	}
	if _, err := Prepare(context.Background(), []Photo{{Path: p1}}, Options{Size: 0}, nil); err == nil {
		t.Error("size 0: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Prepare(ctx, []Photo{{Path: p1}}, Options{Size: 8}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
