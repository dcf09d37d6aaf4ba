package safetensors

import (
	"math"
	"testing"
)

// checkRounding checks a 16-bit encoding against its exact decoding: every
// finite code converts back to itself; midpoints between neighbours round
// to the even one, points just off a midpoint to the nearer one.
func checkRounding(t *testing.T, name string, enc func(float32) uint16, dec func(uint16) float32, maxFinite int) {
	t.Helper()
	for h := 0; h < 1<<16; h++ {
		v := dec(uint16(h))
		if math.IsNaN(float64(v)) {
			if got := dec(enc(v)); !math.IsNaN(float64(got)) {
				t.Fatalf("%s(NaN %#04x) = %#04x, not a NaN", name, h, enc(v))
			}
			continue
		}
		if got := enc(v); got != uint16(h) {
			t.Fatalf("%s(%g) = %#04x, want %#04x", name, v, got, h)
		}
		if h&0x7fff >= maxFinite { // largest finite and beyond: no next finite value
			continue
		}
		next := dec(uint16(h + 1))
		mid := (float64(v) + float64(next)) / 2 // exact in float64, and in float32 here
		even := uint16(h)
		if h&1 == 1 {
			even = uint16(h + 1)
		}
		if got := enc(float32(mid)); got != even {
			t.Fatalf("%s(mid %g) = %#04x, want %#04x", name, mid, got, even)
		}
		lo := math.Nextafter32(float32(mid), v)
		hi := math.Nextafter32(float32(mid), next)
		if got := enc(lo); got != uint16(h) {
			t.Fatalf("%s(%g) = %#04x, want %#04x", name, lo, got, h)
		}
		if got := enc(hi); got != uint16(h+1) {
			t.Fatalf("%s(%g) = %#04x, want %#04x", name, hi, got, h+1)
		}
	}
}

func TestFloat32ToHalf(t *testing.T) {
	checkRounding(t, "Float32ToHalf", Float32ToHalf, HalfToFloat32, 0x7bff)
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{65504, 0x7bff}, {65519, 0x7bff}, {65520, 0x7c00}, {1e6, 0x7c00}, {-1e6, 0xfc00},
		{float32(math.Ldexp(1, -25)), 0}, {float32(math.Ldexp(1.0001, -25)), 1}, {1e-30, 0},
		{float32(math.Inf(-1)), 0xfc00}, {float32(math.Copysign(0, -1)), 0x8000},
	} {
		if got := Float32ToHalf(tc.f); got != tc.want {
			t.Errorf("Float32ToHalf(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
}

func TestFloat32ToBFloat16(t *testing.T) {
	checkRounding(t, "Float32ToBFloat16", Float32ToBFloat16, BFloat16ToFloat32, 0x7f7f)
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{1, 0x3f80}, {math.MaxFloat32, 0x7f80}, {-math.MaxFloat32, 0xff80},
		{math.Float32frombits(0x3f808000), 0x3f80}, {math.Float32frombits(0x3f818000), 0x3f82},
		{math.Float32frombits(0x7f800001), 0x7fc0}, // signalling NaN stays NaN
	} {
		if got := Float32ToBFloat16(tc.f); got != tc.want {
			t.Errorf("Float32ToBFloat16(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
}

// Encoding then decoding gives the values back (exactly for F32/F64 and
// representable values, rounded as Float32ToHalf/BF16 otherwise).
func TestEncodeRoundTrip(t *testing.T) {
	v := []float32{0, 1, -2.5, 1e-3, 3.14159, 7e4, float32(math.Inf(-1))}
	for _, dtype := range []string{"F32", "F64", "F16", "BF16"} {
		b := make([]byte, DTypeSize(dtype)*len(v))
		if err := EncodeFloat32(b, v, dtype); err != nil {
			t.Fatal(err)
		}
		got, err := ToFloat32(b, dtype)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range v {
			want := x
			switch dtype {
			case "F16":
				want = HalfToFloat32(Float32ToHalf(x))
			case "BF16":
				want = BFloat16ToFloat32(Float32ToBFloat16(x))
			}
			if got[i] != want {
				t.Errorf("%s: value %d = %g, want %g", dtype, i, got[i], want)
			}
		}
	}
	if err := EncodeFloat32(make([]byte, 4), []float32{1, 2}, "F32"); err == nil {
		t.Error("short dst accepted")
	}
	if err := EncodeFloat32(make([]byte, 8), []float32{1}, "I64"); err == nil {
		t.Error("float into I64 accepted")
	}
	ints := []int64{-3, 0, 5}
	for _, dtype := range []string{"I64", "I32", "I16", "I8"} {
		b := make([]byte, DTypeSize(dtype)*len(ints))
		if err := EncodeInt64(b, ints, dtype); err != nil {
			t.Fatal(err)
		}
		got, err := ToInt64(b, dtype)
		if err != nil || got[0] != -3 || got[1] != 0 || got[2] != 5 {
			t.Errorf("%s: %v %v", dtype, got, err)
		}
	}
	for _, tc := range []struct {
		v     int64
		dtype string
	}{{-1, "U8"}, {128, "I8"}, {2, "BOOL"}, {1 << 40, "I32"}, {-1, "U64"}} {
		if err := EncodeInt64(make([]byte, DTypeSize(tc.dtype)), []int64{tc.v}, tc.dtype); err == nil {
			t.Errorf("%d as %s accepted", tc.v, tc.dtype)
		}
	}
}
