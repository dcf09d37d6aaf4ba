package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// nameSeeds are diffusers and LitEma names.
var nameSeeds = []string{
	"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
	"up_blocks.3.upsamplers.0.conv.weight",
	"mid_block.resnets.1.time_emb_proj.bias",
	"decoder.up_blocks.0.resnets.2.conv_shortcut.weight",
	"encoder.mid_block.attentions.0.to_out.0.weight",
	"text_model.encoder.layers.11.self_attn.k_proj.weight",
	"diffusion_modeloutput_blocks112transformer_blocks0ff.net0proj.bias",
}

// FuzzNames feeds arbitrary names to the name conversions: they must not
// panic, must only produce names without empty segments, and LitEma names
// must flatten back to their input.
func FuzzNames(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	l := layout{layers: 2, upAttn: map[int]bool{1: true}, vaeUp: 2}
	f.Fuzz(func(t *testing.T, name string) {
		for _, rename := range []func(string, layout) (string, bool){unetName, vaeName, textName} {
			if got, ok := rename(name, l); ok && !wellFormed(got) {
				t.Fatalf("%q -> %q", name, got)
			}
		}
		if got, ok := unflattenUNet(name); ok && flatten(got) != name {
			t.Fatalf("unflatten(%q) = %q does not flatten back", name, got)
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzNames when
// PERFUSION_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PERFUSION_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set PERFUSION_WRITE_FUZZ_SEEDS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzNames")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range nameSeeds {
		body := "go test fuzz v1\nstring(" + strconv.Quote(s) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
