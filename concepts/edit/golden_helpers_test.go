package edit

import (
	"os"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// weightsOf opens a golden weight file as a weights.Source.
func weightsOf(t *testing.T, name string) weights.Source {
	t.Helper()
	return weights.Safetensors(golden.Open(t, name))
}

// tinyUNetConfig reads tiny_unet_config.json.
func tinyUNetConfig(t *testing.T) unet.Config {
	t.Helper()
	b, err := os.ReadFile(golden.Path(t, "tiny_unet_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := unet.ConfigFromJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
