package pipeline

import (
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
)

// TestConfigErrors: a config.json with a value of the wrong type names the
// field and both types (not "empty" or a list of zeros), and a
// normalisation epsilon that is not positive is refused.
func TestConfigErrors(t *testing.T) {
	parse := map[string]func([]byte) error{
		"unet": func(b []byte) error { _, err := unet.ConfigFromJSON(b); return err },
		"vae":  func(b []byte) error { _, err := vae.ConfigFromJSON(b); return err },
		"clip": func(b []byte) error { _, err := clip.ConfigFromJSON(b); return err },
	}
	cases := []struct {
		model, json, want string
	}{
		{"unet", `{"block_out_channels": "320,640,1280,1280"}`, `field "block_out_channels" is a string ("320,640,1280,1280"), want a list of integers`},
		{"unet", `{"block_out_channels": ["320", "640", "1280", "1280"]}`, `field "block_out_channels" is a list with a string element`},
		{"unet", `{"block_out_channels": [320, 640, 1280, 1280], "layers_per_block": "2"}`, `field "layers_per_block" is a string ("2"), want an integer`},
		{"unet", `{"block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768.5}`, `field "cross_attention_dim" is a number (768.5), want an integer`},
		{"unet", `{"block_out_channels": [320, 640, 1280, 1280], "norm_eps": "1e-5"}`, `field "norm_eps" is a string ("1e-5"), want a number`},
		{"unet", `{"block_out_channels": [320, 640, 1280, 1280], "norm_eps": 0}`, "norm_eps 0 must be positive"},
		{"unet", `{"block_out_channels": [320, 640, 1280, 1280], "norm_eps": -1e-5}`, "norm_eps -1e-05 must be positive"},
		{"unet", `{"model_channels": [320], "channel_mult": [1, 2]}`, `field "model_channels" is a list ([320]), want an integer`},
		{"unet", `{"block_out_channels": [320, 640], "down_block_types": "CrossAttnDownBlock2D"}`, `field "down_block_types" is a string`},
		{"vae", `{"block_out_channels": {"0": 128}}`, `field "block_out_channels" is an object ({"0": 128}), want a list of integers`},
		{"vae", `{"block_out_channels": [128, 256, 512, 512], "latent_channels": true}`, `field "latent_channels" is a boolean (true), want an integer`},
		{"vae", `{"ddconfig": {"ch_mult": [1, 2.5, 4]}}`, `field "ch_mult" is a list with a number element ([1, 2.5, 4]), want a list of integers`},
		{"clip", `{"hidden_size": "768"}`, `field "hidden_size" is a string ("768"), want an integer`},
		{"clip", `{"layer_norm_eps": 0}`, "layer_norm_eps 0 must be positive"},
		{"clip", `{"hidden_act": 1}`, `field "hidden_act" is a number (1), want a string`},
	}
	for _, c := range cases {
		err := parse[c.model]([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "empty") || strings.Contains(err.Error(), "[0 0") {
			t.Errorf("%s %s:\n got %v\nwant %q", c.model, c.json, err, c.want)
		}
	}
	// The SD1.5 values still parse.
	if _, err := unet.ConfigFromJSON([]byte(`{"block_out_channels": [320, 640, 1280, 1280], "norm_eps": 1e-05}`)); err != nil {
		t.Error(err)
	}
}
