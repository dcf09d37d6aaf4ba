package vae

import "testing"

func validVAEShapes() map[string][]int {
	return map[string][]int{
		"encoder.conv_in.weight":  {32, 3, 3, 3},
		"decoder.conv_out.weight": {3, 32, 3, 3},
		"decoder.conv_in.weight":  {64, 4, 3, 3},
		"post_quant_conv.weight":  {4, 4, 1, 1},
		"encoder.conv_out.weight": {8, 64, 3, 3},
	}
}

// Hostile or corrupt files must give errors, never a panic or an
// allocation sized by a number read from a tensor name.
func TestDetectConfigRejectsHostileShapes(t *testing.T) {
	huge := validVAEShapes()
	huge["encoder.down.100000000000.block.0.conv1.weight"] = []int{0}
	zero := validVAEShapes()
	zero["encoder.conv_in.weight"] = []int{0, 3, 3, 3}
	zero["encoder.down.0.block.0.conv2.weight"] = []int{32, 32, 3, 3}
	manyBlocks := validVAEShapes()
	manyBlocks["encoder.down.0.block.5000.conv1.weight"] = []int{1}
	for name, shapes := range map[string]map[string][]int{"huge level": huge, "zero width": zero, "many blocks": manyBlocks} {
		if _, err := DetectConfig(shapes); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestValidateBoundsSizes(t *testing.T) {
	c := SD15()
	c.NumResBlocks = 1 << 20
	if err := c.Validate(); err == nil {
		t.Fatal("an absurd block count must be refused")
	}
	c = SD15()
	c.ChMult = make([]int, 64)
	for i := range c.ChMult {
		c.ChMult[i] = 1
	}
	if err := c.Validate(); err == nil {
		t.Fatal("64 levels must be refused")
	}
}
