package assets

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/perfusion-studio/perfusion/assets/internal/tinysd"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// maxDefaultModelBytes is issue 8's limit on the embedded model.
const maxDefaultModelBytes = 40 << 20

func TestDefaultModelFitsTheBudget(t *testing.T) {
	m, err := readManifest(DefaultModelFS())
	if err != nil {
		t.Fatal(err)
	}
	if n := m.size(); n > maxDefaultModelBytes {
		t.Fatalf("the embedded default model is %d bytes, over the %d-byte limit", n, maxDefaultModelBytes)
	}
	for _, want := range []string{"model_index.json", "text_encoder/config.json", "unet/config.json", "vae/config.json",
		"tokenizer/vocab.json", "tokenizer/merges.txt"} {
		if !slices.ContainsFunc(m, func(e manifestEntry) bool { return e.name == want }) {
			t.Errorf("the embedded default model lacks %s", want)
		}
	}
	t.Logf("%d files, %.1f MB", len(m), float64(m.size())/1e6)
}

func TestInstallDefaultModelRepairs(t *testing.T) {
	root := t.TempDir()
	dir, err := InstallDefaultModel(root)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, DefaultModelFS(), dir)
	weights := filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")
	if err := os.Truncate(weights, 1000); err != nil {
		t.Fatal(err)
	}
	again, err := InstallDefaultModel(root)
	if err != nil || again != dir {
		t.Fatalf("reinstall: %q, %v; want %q", again, err, dir)
	}
	sameTree(t, DefaultModelFS(), dir)
}

// loadDefault installs the default model in a temporary folder and loads
// it; DataDir points nowhere, so the tokenizer can only come from the
// folder itself.
func loadDefault(t *testing.T) (*pipeline.Pipeline, string) {
	t.Helper()
	dir, err := InstallDefaultModel(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Load(context.Background(), dir, pipeline.LoadOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return p, dir
}

// readJSON decodes the installed folder's JSON file name into v.
func readJSON(t *testing.T, dir, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestDefaultModelLoads is the loader's golden behaviour on the embedded
// folder: the configs it reads are the ones tinysd defines and the folder's
// config.json files state, its own vocabulary is used, and the native size
// is the training size.
func TestDefaultModelLoads(t *testing.T) {
	p, dir := loadDefault(t)
	var (
		textCfg struct {
			VocabSize int `json:"vocab_size"`
		}
		unetCfg struct {
			SampleSize int `json:"sample_size"`
		}
		vaeCfg struct {
			SampleSize    int     `json:"sample_size"`
			ScalingFactor float64 `json:"scaling_factor"`
		}
		vocab map[string]int
	)
	readJSON(t, dir, "text_encoder/config.json", &textCfg)
	readJSON(t, dir, "unet/config.json", &unetCfg)
	readJSON(t, dir, "vae/config.json", &vaeCfg)
	readJSON(t, dir, "tokenizer/vocab.json", &vocab)

	want := tinysd.Default(textCfg.VocabSize, vaeCfg.SampleSize)
	c, u, v := p.CLIP.Config, p.UNet.Config, p.VAE.Config
	if c.VocabSize != textCfg.VocabSize || c.HiddenSize != want.CLIP.HiddenSize || c.NumLayers != want.CLIP.NumLayers ||
		c.NumHeads != want.CLIP.NumHeads || c.IntermediateSize != want.CLIP.IntermediateSize || c.HiddenAct != want.CLIP.HiddenAct {
		t.Errorf("text encoder config %+v, want %+v", c, want.CLIP)
	}
	if u.ModelChannels != want.UNet.ModelChannels || !slices.Equal(u.ChannelMult, want.UNet.ChannelMult) ||
		u.ContextDim != want.UNet.ContextDim || u.NumHeads != want.UNet.NumHeads || u.NormGroups != want.UNet.NormGroups ||
		u.NumResBlocks != want.UNet.NumResBlocks || u.SampleSize != unetCfg.SampleSize {
		t.Errorf("UNet config %+v, want %+v with sample size %d", u, want.UNet, unetCfg.SampleSize)
	}
	if v.Ch != want.VAE.Ch || !slices.Equal(v.ChMult, want.VAE.ChMult) || v.EmbedDim != want.VAE.EmbedDim {
		t.Errorf("VAE config %+v, want %+v", v, want.VAE)
	}
	// The scale is set from the trained encoder (1/std of its latents):
	// what the file says, and not the untrained placeholder.
	if float64(v.ScaleFactor) != float64(float32(vaeCfg.ScalingFactor)) || vaeCfg.ScalingFactor == float64(want.VAE.ScaleFactor) ||
		vaeCfg.ScalingFactor <= 0.01 || vaeCfg.ScalingFactor >= 100 {
		t.Errorf("VAE scale factor %v, file's %v", v.ScaleFactor, vaeCfg.ScalingFactor)
	}
	if n := p.NativeSize(); n != want.ImageSize || n != vaeCfg.SampleSize || n != unetCfg.SampleSize*want.ImageSize/want.LatentSize() {
		t.Errorf("NativeSize %d, want the training size %d", n, want.ImageSize)
	}
	if m := p.SizeMultiple(); m <= 0 || p.NativeSize()%m != 0 {
		t.Errorf("SizeMultiple %d does not divide the native size %d", m, p.NativeSize())
	}

	// Its own tokenizer, from the folder, not CLIP's 49408-id vocabulary.
	if n := p.Tokenizer.VocabSize(); n != len(vocab) || n > c.VocabSize {
		t.Errorf("tokenizer has %d ids; vocab.json %d, text encoder %d", n, len(vocab), c.VocabSize)
	}
	src := p.Sources()
	for _, f := range []string{"vocab.json", "merges.txt"} {
		if !slices.Contains(src, filepath.Join(dir, "tokenizer", f)) {
			t.Errorf("tokenizer/%s is not among the files loaded: %q", f, src)
		}
	}
	for _, w := range []string{"cat", "dog", "face", "tree", "car", "flower"} {
		ids, ok := p.Tokenizer.Lookup(w)
		if !ok || len(ids) != 1 {
			t.Errorf("%q is %v, want a single token", w, ids)
		}
	}
}

// TestDefaultModelGenerates checks that a fixed seed gives the same image
// twice, at the native size, that another seed gives another image, and
// that the image is not blank.
func TestDefaultModelGenerates(t *testing.T) {
	p, _ := loadDefault(t)
	n := p.NativeSize()
	req := pipeline.Request{Prompt: "grinning face on a red background", Seed: 42, Steps: 4, CFG: 7.5,
		Sampler: "ddim", Width: n, Height: n}
	gen := func(r pipeline.Request) []byte {
		t.Helper()
		res, err := p.Generate(context.Background(), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		img := res.Images[0]
		if b := img.Bounds(); b.Dx() != n || b.Dy() != n {
			t.Fatalf("image %v, want %dx%d", b, n, n)
		}
		return img.Pix
	}
	a, b := gen(req), gen(req)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave two different images")
	}
	req.Seed = 43
	if slices.Equal(a, gen(req)) {
		t.Error("another seed gave the same image")
	}
	lo, hi := a[0], a[0]
	for i, v := range a {
		if i%4 != 3 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if hi-lo < 32 {
		t.Errorf("the image is flat: values %d to %d", lo, hi)
	}
}

// TestDefaultModelHash checks the identities of the installed model: no
// file hash (a folder), and a base hash for concepts that depends on the
// content only, not on where it was installed.
func TestDefaultModelHash(t *testing.T) {
	ctx := context.Background()
	a, err := InstallDefaultModel(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := InstallDefaultModel(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(a) != filepath.Base(b) {
		t.Errorf("two installs named %s and %s", filepath.Base(a), filepath.Base(b))
	}
	if h, err := pipeline.ModelHash(ctx, a); err != nil || h != "" {
		t.Errorf("ModelHash of the folder %q, %v; want none", h, err)
	}
	ha, err := concepts.BaseHash(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := concepts.BaseHash(ctx, b)
	if err != nil || ha == "" || ha != hb {
		t.Errorf("base hashes %q and %q (%v)", ha, hb, err)
	}
	if _, err := fs.Stat(DefaultModelFS(), "model_index.json"); err != nil {
		t.Error(err)
	}
}

// BenchmarkDefaultModel times the embedded default model at the app's
// settings on the model's native size: "render" is a final image (20
// DPM++ 2M Karras steps, CFG 7.5, app.DefaultComposition) and "preview"
// the live preview (at most 8 of those steps, app.DefaultPreviewSettings).
// Issue 8's target is a preview in at most 1 s on 2 cores.
func BenchmarkDefaultModel(b *testing.B) {
	dir, err := InstallDefaultModel(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	p, err := pipeline.Load(context.Background(), dir, pipeline.LoadOptions{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	n := p.NativeSize()
	for _, bc := range []struct {
		name  string
		steps int
	}{{"render", 20}, {"preview", 8}} {
		b.Run(bc.name, func(b *testing.B) {
			req := pipeline.Request{Prompt: "cat face on a red background", Seed: 1, Steps: bc.steps, CFG: 7.5,
				Sampler: "dpmpp_2m_karras", Width: n, Height: n}
			for b.Loop() {
				if _, err := p.Generate(context.Background(), req, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
