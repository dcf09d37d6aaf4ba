package checkpoint

import "strings"

// View is the part of a checkpoint under a name prefix, with the prefix
// removed from names: ck.Prefix("model.diffusion_model.") gives the UNet
// with names like "input_blocks.0.0.weight". It has the reading methods of
// Checkpoint (and so satisfies the same small interfaces model packages
// read weights through).
type View struct {
	c      *Checkpoint
	prefix string
}

// Prefix returns the view of the tensors whose names start with p.
func (c *Checkpoint) Prefix(p string) View { return View{c: c, prefix: p} }

// Prefix narrows the view further.
func (v View) Prefix(p string) View { return View{c: v.c, prefix: v.prefix + p} }

// Names lists the names under the prefix, without it, sorted.
func (v View) Names() []string {
	var out []string
	for _, n := range v.c.names {
		if strings.HasPrefix(n, v.prefix) {
			out = append(out, n[len(v.prefix):])
		}
	}
	return out
}

// Has reports whether prefix+name exists.
func (v View) Has(name string) bool { return v.c.Has(v.prefix + name) }

// Shape returns the shape of prefix+name.
func (v View) Shape(name string) ([]int, bool) { return v.c.Shape(v.prefix + name) }

// DType returns the dtype of prefix+name.
func (v View) DType(name string) string { return v.c.DType(v.prefix + name) }

// Float32 reads prefix+name converted to float32.
func (v View) Float32(name string) ([]float32, []int, error) { return v.c.Float32(v.prefix + name) }

// Half reads prefix+name as raw float16.
func (v View) Half(name string) ([]uint16, []int, error) { return v.c.Half(v.prefix + name) }

// HalfView lends prefix+name as raw float16, as Checkpoint.HalfView.
func (v View) HalfView(name string) ([]uint16, any, []int, error) {
	return v.c.HalfView(v.prefix + name)
}

// Require checks names relative to the prefix, as Checkpoint.Require.
func (v View) Require(want map[string][]int) error {
	full := make(map[string][]int, len(want))
	for n, s := range want {
		full[v.prefix+n] = s
	}
	return v.c.Require(full)
}
