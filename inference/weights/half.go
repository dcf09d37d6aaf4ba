package weights

import (
	"fmt"
	"math"
)

// HalfSource is a Source that can also hand out float16 tensors without
// converting them (a checkpoint.Checkpoint or View, a Map holding Half
// data). Loaders detect it with a type assertion and keep such weights as
// float16 in memory.
type HalfSource interface {
	Source
	// DType is a tensor's stored dtype ("F32", "F16", "BF16", ...), or ""
	// if there is no such tensor.
	DType(name string) string
	// Half reads a tensor stored as F16 as raw IEEE binary16 values; other
	// dtypes are an error.
	Half(name string) ([]uint16, []int, error)
}

// DType returns the stored dtype of name in src: src.DType when src is a
// HalfSource, otherwise "F32" for an existing tensor ("" if absent).
func DType(src Source, name string) string {
	if h, ok := src.(HalfSource); ok {
		return h.DType(name)
	}
	if _, ok := src.Shape(name); ok {
		return "F32"
	}
	return ""
}

// Binary16 constants.
const (
	halfInf = 0x7c00 // +Inf
	halfMax = 65504  // largest finite value
)

// FromHalf converts an IEEE 754 binary16 value to float32, exactly
// (subnormals, infinities and NaN payloads included). It uses no table:
// the 15 magnitude bits are moved under the float32 exponent field and
// re-biased; subnormals are normalised by one float subtraction, which is
// exact.
func FromHalf(h uint16) float32 {
	o := uint32(h&0x7fff) << 13 // exponent and mantissa in float32 position
	exp := o & 0x0f800000       // the binary16 exponent field, shifted
	o += (127 - 15) << 23       // re-bias the exponent
	switch exp {
	case 0x0f800000: // Inf or NaN: exponent all ones
		o += (128 - 16) << 23
	case 0: // zero or subnormal: m*2^-24 = (1.m' * 2^-14) - 2^-14
		o += 1 << 23
		o = math.Float32bits(math.Float32frombits(o) - 0x1p-14)
	}
	return math.Float32frombits(o | uint32(h&0x8000)<<16)
}

// HalfToFloat32s converts src (binary16) into dst[:len(src)], exactly as
// FromHalf. dst must be at least as long as src. Normal values, nearly all
// of a weight matrix, take a branch-free path: shift the 15 magnitude bits
// into place and add the exponent bias difference (112 << 23); zeros,
// subnormals, infinities and NaNs go through FromHalf.
func HalfToFloat32s(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		r := uint32(h&0x8000)<<16 | (uint32(h&0x7fff)<<13 + (127-15)<<23)
		if (h+0x400)&0x7800 == 0 { // exponent field 0 or 31
			r = math.Float32bits(FromHalf(h))
		}
		dst[i] = math.Float32frombits(r)
	}
}

// ToHalf rounds a float32 to the nearest binary16 value, ties to even (the
// IEEE default, as torch's .half()). Values of magnitude 65520 and above
// become infinities; NaNs stay NaN (quiet, top payload bits kept).
func ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	abs := b & 0x7fffffff
	if abs-0x38800000 < 0x47800000-0x38800000 { // 2^-14 <= |f| < 2^16: a normal half
		r := abs - (127-15)<<23 // re-bias the exponent
		r += 0xfff + r>>13&1    // round at bit 13, ties to even; a carry lands in the exponent (up to Inf)
		return sign | uint16(r>>13)
	}
	return sign | toHalfRare(abs)
}

// toHalfRare rounds the magnitudes outside the normal binary16 range:
// subnormals and zero, overflow, Inf and NaN.
func toHalfRare(abs uint32) uint16 {
	exp := int(abs >> 23)
	man := abs & 0x7fffff
	switch e := exp - 127 + 15; {
	case exp == 0xff: // Inf or NaN
		if man == 0 {
			return halfInf
		}
		return halfInf | 0x200 | uint16(man>>13)
	case e >= 31: // |f| >= 2^16: beyond the rounding range of the largest half
		return halfInf
	case e < -10: // |f| < 2^-25: rounds to zero
		return 0
	default: // binary16 subnormal range (e in [-10, 0]): units of 2^-24
		return uint16(roundShift(man|0x800000, uint(14-e)))
	}
}

// roundShift returns v >> s rounded to nearest, ties to even (1 <= s < 32).
func roundShift(v uint32, s uint) uint32 {
	q := v >> s
	rem := v & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || rem == half && q&1 == 1 {
		q++
	}
	return q
}

// Float32sToHalf rounds src into dst[:len(src)] with ToHalf and reports
// how many finite values overflowed to infinity.
func Float32sToHalf(dst []uint16, src []float32) (overflow int) {
	dst = dst[:len(src)]
	for i, f := range src {
		h := ToHalf(f)
		if h&0x7fff == halfInf && math.Float32bits(f)&0x7fffffff < 0x7f800000 {
			overflow++
		}
		dst[i] = h
	}
	return overflow
}

// halfOf returns the float16 data of t, rounding its float32 data if t has
// none.
func halfOf(t Tensor) []uint16 {
	if t.Half != nil {
		return t.Half
	}
	h := make([]uint16, len(t.Data))
	Float32sToHalf(h, t.Data)
	return h
}

// ToHalf returns a copy of m with every tensor stored as float16 (rounded
// to nearest even; tensors already half are shared), as a float16
// checkpoint of the same model would hold them.
func (m Map) ToHalf() Map {
	out := make(Map, len(m))
	for n, t := range m {
		out[n] = Tensor{Half: halfOf(t), Shape: t.Shape}
	}
	return out
}

// ToFloat32 returns a copy of m with every tensor stored as float32 (half
// tensors converted exactly; float32 ones shared).
func (m Map) ToFloat32() Map {
	out := make(Map, len(m))
	for n, t := range m {
		if t.Half != nil {
			d := make([]float32, len(t.Half))
			HalfToFloat32s(d, t.Half)
			t = Tensor{Data: d, Shape: t.Shape}
		}
		out[n] = t
	}
	return out
}

// ReadAll reads every tensor of src into a Map: float16 tensors of a
// HalfSource stay float16, the others are converted to float32.
func ReadAll(src Source) (Map, error) {
	out := Map{}
	for _, n := range src.Names() {
		if DType(src, n) == "F16" {
			d, sh, err := src.(HalfSource).Half(n)
			if err != nil {
				return nil, fmt.Errorf("weights: %w", err)
			}
			out[n] = Tensor{Half: d, Shape: sh}
			continue
		}
		d, sh, err := src.Float32(n)
		if err != nil {
			return nil, fmt.Errorf("weights: %w", err)
		}
		out[n] = Tensor{Data: d, Shape: sh}
	}
	return out, nil
}
