package clip

import "testing"

// Hostile or corrupt files must give errors, never a loop or an allocation
// sized by a number read from the file.
func TestConfigRejectsAbsurdSizes(t *testing.T) {
	for _, js := range []string{
		`{"num_hidden_layers": 100000000}`,
		`{"hidden_size": 1073741824, "num_attention_heads": 1}`,
		`{"max_position_embeddings": 100000000}`,
	} {
		if _, err := ConfigFromJSON([]byte(js)); err == nil {
			t.Errorf("%s: want an error", js)
		}
	}
	shapes := map[string][]int{
		"embeddings.token_embedding.weight":    {49408, 64},
		"embeddings.position_embedding.weight": {77, 64},
		"encoder.layers.0.mlp.fc1.weight":      {256, 64},
		"encoder.layers.50000000.x":            {0},
	}
	if _, err := DetectConfig(shapes); err == nil {
		t.Error("a layer index of 50000000 must be refused")
	}
}
