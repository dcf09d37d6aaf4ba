package weights

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// halfRef is binary16 -> float64 written from the definition:
// (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
func halfRef(h uint16) float64 {
	s := 1.0
	if h&0x8000 != 0 {
		s = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return s * math.Ldexp(m/1024, -14)
	case 31:
		if m == 0 {
			return s * math.Inf(1)
		}
		return math.NaN()
	}
	return s * math.Ldexp(1+m/1024, e-15)
}

func TestFromHalfAll(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, len(src))
	HalfToFloat32s(dst, src)
	for i := range src {
		h := uint16(i)
		got, want := safetensors.HalfToFloat32(h), halfRef(h)
		if math.Float32bits(dst[i]) != math.Float32bits(got) {
			t.Fatalf("HalfToFloat32s(%#04x) = %g, FromHalf %g", h, dst[i], got)
		}
		if math.IsNaN(want) {
			// NaN: payload kept in the top mantissa bits, sign kept.
			b := math.Float32bits(got)
			if !math.IsNaN(float64(got)) || b>>13&0x3ff != uint32(h&0x3ff) || b>>31 != uint32(h>>15) {
				t.Fatalf("safetensors.HalfToFloat32(%#04x) = %#08x, want NaN with its payload", h, b)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("safetensors.HalfToFloat32(%#04x) = %g, want %g", h, got, want)
		}
	}
}

func TestToHalfRoundTrip(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		got := safetensors.Float32ToHalf(safetensors.HalfToFloat32(h))
		if h&0x7fff > halfInf { // NaN stays NaN
			if got&0x7fff <= halfInf {
				t.Fatalf("safetensors.Float32ToHalf(NaN %#04x) = %#04x", h, got)
			}
			continue
		}
		if got != h {
			t.Fatalf("safetensors.Float32ToHalf(safetensors.HalfToFloat32(%#04x)) = %#04x", h, got)
		}
	}
}

// TestToHalfExhaustive checks ToHalf on every positive float32 from 2^-26
// (below which everything rounds to zero) up to 2^16 (from which
// everything is Inf), and their negatives, against nearest-even rounding
// decided in float64 between consecutive binary16 values. Outside that
// range it checks a stride. Under -short, a stride throughout.
func TestToHalfExhaustive(t *testing.T) {
	// vals[k] is the value of the positive half with bits k; vals[0x7c00]
	// stands for 2^16, the next step after the largest finite half, whose
	// bits (0x7c00, even) are those of Inf.
	vals := make([]float64, halfInf+1)
	for k := range halfInf {
		vals[k] = halfRef(uint16(k))
	}
	vals[halfInf] = 65536
	lo, hi := math.Float32bits(0x1p-26), math.Float32bits(0x1p16)
	step := uint32(1)
	if testing.Short() {
		step = 997
	}
	k := 0
	checked := 0
	for b := lo; b <= hi; b += step {
		v := float64(math.Float32frombits(b))
		for k+1 <= halfInf && vals[k+1] <= v {
			k++
		}
		want := uint16(k)
		if k < halfInf {
			d1, d2 := v-vals[k], vals[k+1]-v
			if d2 < d1 || d2 == d1 && k&1 == 1 {
				want = uint16(k + 1)
			}
		}
		f := float32(v)
		if got := safetensors.Float32ToHalf(f); got != want {
			t.Fatalf("safetensors.Float32ToHalf(%g [%#08x]) = %#04x, want %#04x", f, b, got, want)
		}
		if got := safetensors.Float32ToHalf(-f); got != want|0x8000 {
			t.Fatalf("safetensors.Float32ToHalf(%g) = %#04x, want %#04x", -f, got, want|0x8000)
		}
		checked++
	}
	// Below: zero of the same sign. Above: Inf. NaN: NaN.
	for b := uint32(0); b < lo; b += 4099 {
		if got := safetensors.Float32ToHalf(math.Float32frombits(b)); got != 0 {
			t.Fatalf("safetensors.Float32ToHalf(%#08x) = %#04x, want 0", b, got)
		}
		if got := safetensors.Float32ToHalf(math.Float32frombits(b | 1<<31)); got != 0x8000 {
			t.Fatalf("safetensors.Float32ToHalf(%#08x) = %#04x, want -0", b|1<<31, got)
		}
	}
	for b := hi; b < 0x7f800000 && b >= hi; b += 4099 {
		if got := safetensors.Float32ToHalf(math.Float32frombits(b)); got != halfInf {
			t.Fatalf("safetensors.Float32ToHalf(%#08x) = %#04x, want Inf", b, got)
		}
	}
	if got := safetensors.Float32ToHalf(float32(math.Inf(-1))); got != 0xfc00 {
		t.Errorf("safetensors.Float32ToHalf(-Inf) = %#04x", got)
	}
	if got := safetensors.Float32ToHalf(float32(math.NaN())); got&0x7fff <= halfInf {
		t.Errorf("safetensors.Float32ToHalf(NaN) = %#04x", got)
	}
	t.Logf("checked %d values in [2^-26, 2^16] and their negatives", checked)
}

func TestFloat32sToHalfOverflow(t *testing.T) {
	src := []float32{1, halfMax, 65519, 65520, -1e6, float32(math.Inf(1)), float32(math.NaN())}
	dst := make([]uint16, len(src))
	if n := Float32sToHalf(dst, src); n != 2 {
		t.Errorf("overflow = %d, want 2 (65520 and -1e6)", n)
	}
	want := []uint16{0x3c00, 0x7bff, 0x7bff, 0x7c00, 0xfc00, 0x7c00}
	if !reflect.DeepEqual(dst[:6], want) {
		t.Errorf("got %#04x, want %#04x", dst[:6], want)
	}
}

func TestMapHalf(t *testing.T) {
	m := Map{
		"a": {Data: []float32{1, 0.1, -2}, Shape: []int{3}},
		"b": {Half: []uint16{0x3c00, 0xc000}, Shape: []int{2}},
	}
	if m.DType("a") != "F32" || m.DType("b") != "F16" || m.DType("c") != "" {
		t.Errorf("dtypes %q %q %q", m.DType("a"), m.DType("b"), m.DType("c"))
	}
	if d, _, err := m.Float32("b"); err != nil || !reflect.DeepEqual(d, []float32{1, -2}) {
		t.Errorf("Float32(b) = %v, %v", d, err)
	}
	if _, _, err := m.Half("a"); err == nil {
		t.Error("Half of a float32 tensor succeeded")
	}
	h := m.ToHalf()
	if d, _, err := h.Half("a"); err != nil || !reflect.DeepEqual(d, []uint16{0x3c00, safetensors.Float32ToHalf(0.1), 0xc000}) {
		t.Errorf("ToHalf: %v, %v", d, err)
	}
	back := h.ToFloat32()
	if back.DType("a") != "F32" || back["a"].Data[1] != safetensors.HalfToFloat32(safetensors.Float32ToHalf(0.1)) {
		t.Errorf("ToFloat32: %v", back["a"])
	}
	mg := Merge(Map{"x": {Data: []float32{1}, Shape: []int{1}}}, h)
	if DType(mg, "x") != "F32" || DType(mg, "b") != "F16" || DType(mg, "zz") != "" {
		t.Error("merged dtypes")
	}
	if d, _, err := mg.(HalfSource).Half("b"); err != nil || len(d) != 2 {
		t.Errorf("merged Half: %v", err)
	}
	all, err := ReadAll(mg)
	if err != nil || all.DType("b") != "F16" || all.DType("x") != "F32" || len(all) != 3 {
		t.Errorf("ReadAll: %v, %v", all, err)
	}
}

func BenchmarkHalfToFloat32s(b *testing.B) {
	const n = 1 << 20
	src := make([]uint16, n)
	for i := range src {
		src[i] = safetensors.Float32ToHalf(float32(math.Sin(float64(i))) * 0.05)
	}
	dst := make([]float32, n)
	b.SetBytes(n * 2)
	for b.Loop() {
		HalfToFloat32s(dst, src)
	}
}

func BenchmarkFloat32sToHalf(b *testing.B) {
	const n = 1 << 20
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(math.Sin(float64(i))) * 0.05
	}
	dst := make([]uint16, n)
	b.SetBytes(n * 4)
	for b.Loop() {
		Float32sToHalf(dst, src)
	}
}

func TestSafetensorsHalf(t *testing.T) {
	// A two-tensor file: "h" F16 [2] = {1, -2}, "f" F32 [1] = {0.5}.
	header := `{"f":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}`
	for len(header)%8 != 0 {
		header += " "
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(header)))
	buf.WriteString(header)
	binary.Write(&buf, binary.LittleEndian, float32(0.5))
	binary.Write(&buf, binary.LittleEndian, []uint16{0x3c00, 0xc000})
	f, err := safetensors.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	src := Safetensors(f)
	hs, ok := src.(HalfSource)
	if !ok {
		t.Fatal("Safetensors is not a HalfSource")
	}
	if hs.DType("h") != "F16" || hs.DType("f") != "F32" || hs.DType("x") != "" {
		t.Errorf("dtypes %q %q %q", hs.DType("h"), hs.DType("f"), hs.DType("x"))
	}
	if d, _, err := hs.Half("h"); err != nil || !reflect.DeepEqual(d, []uint16{0x3c00, 0xc000}) {
		t.Errorf("Half(h) = %v, %v", d, err)
	}
	if _, _, err := hs.Half("f"); err == nil {
		t.Error("Half of an F32 tensor succeeded")
	}
}
