package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DTypeSize is the width in bytes of a dtype, or 0 if unknown.
func DTypeSize(dtype string) int {
	switch dtype {
	case "F64", "I64", "U64":
		return 8
	case "F32", "I32", "U32":
		return 4
	case "F16", "BF16", "I16", "U16":
		return 2
	case "U8", "I8", "BOOL", "F8_E4M3", "F8_E5M2":
		return 1
	}
	return 0
}

// ToFloat32 converts little-endian raw values of dtype to float32. Float
// conversions are exact except F64 (rounded to nearest) and 64/32-bit
// integers beyond 2^24.
func ToFloat32(b []byte, dtype string) ([]float32, error) {
	w := DTypeSize(dtype)
	if w == 0 {
		return nil, fmt.Errorf("cannot convert dtype %q to float32: %w", dtype, ErrUnsupported)
	}
	if len(b)%w != 0 {
		return nil, fmt.Errorf("%d bytes are not a whole number of %s values: %w", len(b), dtype, ErrFormat)
	}
	out := make([]float32, len(b)/w)
	le := binary.LittleEndian
	switch dtype {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case "F16":
		for i := range out {
			// Normal values (nearly all weights) take a branch-free path:
			// move the 15 magnitude bits into place and rebias the exponent
			// (112 << 23); zeros, subnormals, infinities and NaNs (exponent
			// field 0 or 31) go through HalfToFloat32.
			h := le.Uint16(b[2*i:])
			r := uint32(h&0x8000)<<16 | (uint32(h&0x7fff)<<13 + (127-15)<<23)
			if (h+0x400)&0x7800 == 0 {
				r = math.Float32bits(HalfToFloat32(h))
			}
			out[i] = math.Float32frombits(r)
		}
	case "BF16":
		for i := range out {
			out[i] = BFloat16ToFloat32(le.Uint16(b[2*i:]))
		}
	case "F8_E4M3":
		for i := range out {
			out[i] = E4M3ToFloat32(b[i])
		}
	case "F8_E5M2":
		for i := range out {
			out[i] = HalfToFloat32(uint16(b[i]) << 8) // E5M2 is the top byte of a binary16
		}
	default:
		f64, err := ToFloat64(b, dtype)
		if err != nil {
			return nil, err
		}
		for i, v := range f64 {
			out[i] = float32(v)
		}
	}
	return out, nil
}

// ToFloat64 converts little-endian raw values of dtype to float64 (exact
// except 64-bit integers beyond 2^53).
func ToFloat64(b []byte, dtype string) ([]float64, error) {
	le := binary.LittleEndian
	switch dtype {
	case "F64":
		if len(b)%8 != 0 {
			return nil, fmt.Errorf("%d bytes are not a whole number of F64 values: %w", len(b), ErrFormat)
		}
		out := make([]float64, len(b)/8)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return out, nil
	case "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2":
		f32, err := ToFloat32(b, dtype)
		if err != nil {
			return nil, err
		}
		out := make([]float64, len(f32))
		for i, v := range f32 {
			out[i] = float64(v)
		}
		return out, nil
	}
	if dtype == "U64" {
		if len(b)%8 != 0 {
			return nil, fmt.Errorf("%d bytes are not a whole number of U64 values: %w", len(b), ErrFormat)
		}
		out := make([]float64, len(b)/8)
		for i := range out {
			out[i] = float64(le.Uint64(b[8*i:]))
		}
		return out, nil
	}
	ints, err := ToInt64(b, dtype)
	if err != nil {
		return nil, fmt.Errorf("cannot convert dtype %q to float: %w", dtype, ErrUnsupported)
	}
	out := make([]float64, len(ints))
	for i, v := range ints {
		out[i] = float64(v)
	}
	return out, nil
}

// ToInt64 converts little-endian raw integer or bool values to int64 (U64
// values above 2^63-1 wrap, as a two's complement reinterpretation).
func ToInt64(b []byte, dtype string) ([]int64, error) {
	w := DTypeSize(dtype)
	switch dtype {
	case "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL":
	default:
		return nil, fmt.Errorf("dtype %s is not an integer type: %w", dtype, ErrUnsupported)
	}
	if len(b)%w != 0 {
		return nil, fmt.Errorf("%d bytes are not a whole number of %s values: %w", len(b), dtype, ErrFormat)
	}
	out := make([]int64, len(b)/w)
	le := binary.LittleEndian
	for i := range out {
		switch dtype {
		case "I64", "U64":
			out[i] = int64(le.Uint64(b[8*i:]))
		case "I32":
			out[i] = int64(int32(le.Uint32(b[4*i:])))
		case "U32":
			out[i] = int64(le.Uint32(b[4*i:]))
		case "I16":
			out[i] = int64(int16(le.Uint16(b[2*i:])))
		case "U16":
			out[i] = int64(le.Uint16(b[2*i:]))
		case "I8":
			out[i] = int64(int8(b[i]))
		default: // U8, BOOL
			out[i] = int64(b[i])
		}
	}
	return out, nil
}

// ToUint16 reinterprets little-endian 2-byte values (a trailing odd byte is
// ignored).
func ToUint16(b []byte) []uint16 {
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return out
}

// HalfToFloat32 converts an IEEE 754 binary16 value to float32 exactly
// (subnormals, infinities and NaN payloads included).
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		man &= 0x3ff
		return math.Float32frombits(sign | e<<23 | man<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}

// BFloat16ToFloat32 converts a bfloat16 value (the top half of a float32)
// to float32 exactly.
func BFloat16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// E4M3ToFloat32 converts an OCP float8 E4M3 ("fn": no infinities, only
// S.1111.111 is NaN, bias 7) value to float32 exactly.
func E4M3ToFloat32(v uint8) float32 {
	sign := float32(1)
	if v&0x80 != 0 {
		sign = -1
	}
	exp := int(v>>3) & 0xf
	man := float32(v & 7)
	switch {
	case exp == 0xf && v&7 == 7:
		return float32(math.NaN())
	case exp == 0:
		return sign * man / 8 * float32(math.Ldexp(1, -6))
	}
	return sign * (1 + man/8) * float32(math.Ldexp(1, exp-7))
}
