package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/internal/ckpttest"
)

// TestForeignFilesByContent: a file of the wrong kind, whatever its
// extension, is named by its content.
func TestForeignFilesByContent(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, body, want string }{
		{"notes.ckpt", "these are my notes about models\n", `is a text file (starting "these are my notes`},
		{"page.ckpt", "<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>", "is an HTML page"},
		{"model.safetensors", "version https://git-lfs.github.com/spec/v1\noid sha256:cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516\nsize 4265380512\n", "is a Git LFS pointer"},
		{"config.ckpt", `{"_class_name": "UNet2DConditionModel"}`, "is a JSON text file"},
		{"image.ckpt", "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", "is a PNG image"},
		{"random.bin", "\xde\xad\xbe\xef\x01\x02\x03\x04\x05\x06\x07\x08\x09", "starts with bytes de ad be ef 01 02 03 04"},
	}
	for _, c := range cases {
		_, err := Open(writeFile(t, dir, c.name, []byte(c.body)))
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want an ErrFormat saying %q", c.name, err, c.want)
		}
		if err != nil && c.name != "random.bin" && strings.Contains(err.Error(), "safetensors:") {
			t.Errorf("%s: %v speaks of a safetensors header", c.name, err)
		}
	}
}

// TestMissingConvIn: a UNet without its first convolution is an incomplete
// UNet, not "only a text encoder".
func TestMissingConvIn(t *testing.T) {
	c := fromShapes(map[string]spec{
		unetPrefix + "time_embed.0.weight":                  {"F32", []int{1280, 320}},
		unetPrefix + "out.2.weight":                         {"F32", []int{4, 320, 3, 3}},
		vaePrefix + "decoder.conv_in.weight":                {"F32", []int{512, 4, 3, 3}},
		textPrefix + "embeddings.token_embedding.weight":    {"F32", []int{49408, 768}},
		textPrefix + "final_layer_norm.weight":              {"F32", []int{768}},
		textPrefix + "embeddings.position_embedding.weight": {"F32", []int{77, 768}},
	})
	_, err := c.Architecture()
	if err == nil || !strings.Contains(err.Error(), "has UNet weights but not "+unetPrefix+"input_blocks.0.0.weight") ||
		strings.Contains(err.Error(), "text encoder") || strings.Contains(err.Error(), "VAE") {
		t.Errorf("got %v", err)
	}
	// A VAE alone is still called one, and a text encoder alone too.
	vae := fromShapes(map[string]spec{vaePrefix + "decoder.conv_in.weight": {"F32", []int{512, 4, 3, 3}},
		vaePrefix + "decoder.conv_out.weight": {"F32", []int{3, 128, 3, 3}}, vaePrefix + "post_quant_conv.weight": {"F32", []int{4, 4, 1, 1}}})
	if _, err := vae.Architecture(); err == nil || !strings.Contains(err.Error(), "standalone VAE") {
		t.Errorf("VAE: %v", err)
	}
	text := fromShapes(map[string]spec{textPrefix + "final_layer_norm.weight": {"F32", []int{768}},
		textPrefix + "final_layer_norm.bias": {"F32", []int{768}}, textPrefix + "embeddings.token_embedding.weight": {"F32", []int{49408, 768}}})
	if _, err := text.Architecture(); err == nil || !strings.Contains(err.Error(), "only a text encoder") {
		t.Errorf("text encoder: %v", err)
	}
}

// diffusersParts writes a tiny diffusers folder with the given components.
func diffusersParts(t *testing.T, dir string, parts ...string) {
	t.Helper()
	writeFile(t, dir, "model_index.json", []byte(`{"_class_name": "StableDiffusionPipeline"}`))
	for _, p := range parts {
		switch p {
		case "vae":
			writeFile(t, dir, "vae/config.json", []byte(`{"latent_channels": 4}`))
			writeFile(t, dir, "vae/diffusion_pytorch_model.safetensors", ckpttest.Safetensors([]ckpttest.Tensor{ckpttest.Zeros("decoder.conv_in.weight", "F32", 8, 4, 3, 3)}))
		case "text_encoder":
			writeFile(t, dir, "text_encoder/model.safetensors", ckpttest.Safetensors([]ckpttest.Tensor{ckpttest.Zeros("text_model.final_layer_norm.weight", "F32", 8)}))
		case "unet":
			writeFile(t, dir, "unet/config.json", []byte(`{"in_channels": 4}`))
			writeFile(t, dir, "unet/diffusion_pytorch_model.safetensors", ckpttest.Safetensors([]ckpttest.Tensor{ckpttest.Zeros("conv_in.weight", "F32", 8, 4, 3, 3)}))
		}
	}
}

// TestDiffusersWithoutUNet: a folder lacking unet/ (or whose unet/ is a
// symbolic-link loop) says so, not "a standalone VAE".
func TestDiffusersWithoutUNet(t *testing.T) {
	dir := t.TempDir()
	diffusersParts(t, dir, "vae", "text_encoder")
	c := mustOpen(t, dir, Options{})
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "lacks unet/") || strings.Contains(err.Error(), "VAE") || !errors.Is(err, ErrFormat) {
		t.Errorf("no unet/: %v", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	if err := os.Symlink("unet", filepath.Join(dir, "unet")); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "unet cannot be opened") || !errors.Is(err, ErrFormat) {
		t.Errorf("unet/ loop: %v", err)
	}
}

// TestSources lists the files a checkpoint was read from.
func TestSources(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "m.safetensors", ckpttest.Safetensors(small()))
	if got := mustOpen(t, p, Options{}).Sources(); !slices.Equal(got, []string{p}) {
		t.Errorf("single file: %v", got)
	}
	folder := filepath.Join(dir, "pipe")
	diffusersParts(t, folder, "unet", "vae", "text_encoder")
	got := mustOpen(t, folder, Options{}).Sources()
	for _, want := range []string{"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
		"vae/config.json", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"} {
		if !slices.Contains(got, filepath.Join(folder, want)) {
			t.Errorf("diffusers: %s missing from %v", want, got)
		}
	}
}
