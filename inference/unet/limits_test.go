package unet

import "testing"

// Hostile or corrupt files must give errors, never a panic, an endless loop
// or a huge allocation.
func TestDetectConfigRejectsHostileShapes(t *testing.T) {
	cases := map[string]map[string][]int{
		"zero model channels": {
			"input_blocks.0.0.weight":             {0, 4, 3, 3},
			"out.2.weight":                        {4, 0, 3, 3},
			"input_blocks.1.0.in_layers.2.weight": {0, 0, 3, 3},
		},
		"absurd block index": {
			"input_blocks.0.0.weight":                  {32, 4, 3, 3},
			"out.2.weight":                             {4, 32, 3, 3},
			"input_blocks.1.0.in_layers.2.weight":      {32, 32, 3, 3},
			"input_blocks.99999999999.0.in_layers.2.x": {1},
		},
	}
	for name, shapes := range cases {
		if _, err := DetectConfig(shapes); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestConfigFromJSONRejectsBadHeadsAndSizes(t *testing.T) {
	for _, js := range []string{
		`{"block_out_channels": [32, 64], "attention_head_dim": [0, 1]}`,
		`{"block_out_channels": [32, 64], "num_attention_heads": [-2, 2]}`,
		`{"block_out_channels": [32, 64], "layers_per_block": 100000000}`,
		`{"block_out_channels": [32, 64, 64, 64, 64, 64, 64, 64, 64, 64]}`,
	} {
		if _, err := ConfigFromJSON([]byte(js)); err == nil {
			t.Errorf("%s: want an error", js)
		}
	}
}
