package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// EncodeFloat32 writes v into dst as little-endian values of a float dtype:
// F32 and F64 exactly, F16 and BF16 rounded to nearest, ties to even (as
// torch's .half() and .bfloat16() do; see Float32ToHalf, Float32ToBFloat16).
// dst must hold exactly len(v) values.
func EncodeFloat32(dst []byte, v []float32, dtype string) error {
	w := DTypeSize(dtype)
	if w == 0 || len(dst) != w*len(v) {
		return fmt.Errorf("safetensors: encode %d values as %q into %d bytes", len(v), dtype, len(dst))
	}
	le := binary.LittleEndian
	switch dtype {
	case "F32":
		for i, x := range v {
			le.PutUint32(dst[4*i:], math.Float32bits(x))
		}
	case "F64":
		for i, x := range v {
			le.PutUint64(dst[8*i:], math.Float64bits(float64(x)))
		}
	case "F16":
		for i, x := range v {
			le.PutUint16(dst[2*i:], Float32ToHalf(x))
		}
	case "BF16":
		for i, x := range v {
			le.PutUint16(dst[2*i:], Float32ToBFloat16(x))
		}
	default:
		return fmt.Errorf("safetensors: cannot encode float32 values as %s: %w", dtype, ErrUnsupported)
	}
	return nil
}

// intRange is the range of values of each integer dtype EncodeInt64
// writes.
var intRange = map[string][2]int64{
	"I64":  {math.MinInt64, math.MaxInt64},
	"U64":  {0, math.MaxInt64},
	"I32":  {math.MinInt32, math.MaxInt32},
	"U32":  {0, math.MaxUint32},
	"I16":  {math.MinInt16, math.MaxInt16},
	"U16":  {0, math.MaxUint16},
	"I8":   {math.MinInt8, math.MaxInt8},
	"U8":   {0, math.MaxUint8},
	"BOOL": {0, 1},
}

// EncodeInt64 writes v into dst as little-endian values of an integer or
// bool dtype; a value outside the dtype's range is an error. dst must hold
// exactly len(v) values.
func EncodeInt64(dst []byte, v []int64, dtype string) error {
	w := DTypeSize(dtype)
	r, ok := intRange[dtype]
	if !ok {
		return fmt.Errorf("safetensors: cannot encode integers as %s: %w", dtype, ErrUnsupported)
	}
	if len(dst) != w*len(v) {
		return fmt.Errorf("safetensors: encode %d values as %q into %d bytes", len(v), dtype, len(dst))
	}
	le := binary.LittleEndian
	for i, x := range v {
		if x < r[0] || x > r[1] {
			return fmt.Errorf("safetensors: value %d at index %d does not fit %s", x, i, dtype)
		}
		switch w {
		case 8:
			le.PutUint64(dst[8*i:], uint64(x))
		case 4:
			le.PutUint32(dst[4*i:], uint32(x))
		case 2:
			le.PutUint16(dst[2*i:], uint16(x))
		default:
			dst[i] = byte(x)
		}
	}
	return nil
}

// Float32ToHalf converts f to IEEE 754 binary16, rounding to nearest, ties
// to even: magnitudes past the largest half (65504, after rounding) become
// infinity, tiny ones subnormals or zero, and NaN stays a (quiet) NaN.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half: value = M * 2^(exp-150) = m * 2^-24 with
		// m = M >> (14 - e), M the 24-bit significand.
		shift := uint(14 - e)
		if shift > 24 {
			return sign
		}
		return sign | uint16(roundShift(man|0x800000, shift))
	}
	// Normal: the carry of a rounded-up mantissa moves into the exponent
	// (and from the largest exponent into infinity).
	return sign + uint16(e)<<10 + uint16(roundShift(man, 13))
}

// Float32ToBFloat16 converts f to bfloat16 (the top 16 bits of a float32),
// rounding to nearest, ties to even; NaN stays a (quiet) NaN.
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it one after truncation
		return uint16(b>>16) | 0x40
	}
	return uint16(roundShift(b, 16))
}

// roundShift is v >> s rounded to nearest, ties to even (1 <= s <= 24).
func roundShift(v uint32, s uint) uint32 {
	q, rem, half := v>>s, v&(1<<s-1), uint32(1)<<(s-1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}
