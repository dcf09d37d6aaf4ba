package weights

import (
	"fmt"
	"math"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
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

// HalfViewer is a HalfSource that can lend float16 tensors without copying
// them: views of a memory-mapped file (a checkpoint.Checkpoint or View).
// The values are read-only, and valid as long as keep is reachable: a
// holder of the values holds keep beside them. A nil keep means the values
// are an ordinary copy.
type HalfViewer interface {
	HalfView(name string) (v []uint16, keep any, shape []int, err error)
}

// HalfView lends a float16 tensor of src: through HalfViewer where src is
// one, else a copy from HalfSource.Half (keep nil).
func HalfView(src Source, name string) (v []uint16, keep any, shape []int, err error) {
	if hv, ok := src.(HalfViewer); ok {
		return hv.HalfView(name)
	}
	h, ok := src.(HalfSource)
	if !ok {
		return nil, nil, nil, fmt.Errorf("weights: tensor %q is not stored as F16", name)
	}
	v, shape, err = h.Half(name)
	return v, nil, shape, err
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

// HalfToFloat32s converts src (binary16) into dst[:len(src)], exactly as
// safetensors.HalfToFloat32. dst must be at least as long as src. Normal values, nearly all
// of a weight matrix, take a branch-free path: shift the 15 magnitude bits
// into place and add the exponent bias difference (112 << 23); zeros,
// subnormals, infinities and NaNs go through safetensors.HalfToFloat32.
func HalfToFloat32s(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		r := uint32(h&0x8000)<<16 | (uint32(h&0x7fff)<<13 + (127-15)<<23)
		if (h+0x400)&0x7800 == 0 { // exponent field 0 or 31
			r = math.Float32bits(safetensors.HalfToFloat32(h))
		}
		dst[i] = math.Float32frombits(r)
	}
}

// Float32sToHalf rounds src into dst[:len(src)] with safetensors.Float32ToHalf and reports
// how many finite values overflowed to infinity.
func Float32sToHalf(dst []uint16, src []float32) (overflow int) {
	dst = dst[:len(src)]
	for i, f := range src {
		h := safetensors.Float32ToHalf(f)
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
