package covariance

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/inference/weights"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// fakeTok maps a caption to 77 ids from its bytes.
type fakeTok struct{}

func (fakeTok) IDs77(text string) []int {
	ids := make([]int, 77)
	for i := range ids {
		ids[i] = 7
		if i < len(text) {
			ids[i] = int(text[i])
		}
	}
	return ids
}

// fakeEnc encodes token id x at position p as a fixed pseudo-random vector.
type fakeEnc struct {
	d     int
	calls int
}

func (f *fakeEnc) Width() int { return f.d }
func (f *fakeEnc) Encode(ctx context.Context, ids [][]int) ([]float32, error) {
	f.calls++
	var out []float32
	for _, row := range ids {
		for p, id := range row {
			r := rand.New(rand.NewPCG(uint64(id), uint64(p)))
			for range f.d {
				out = append(out, float32(r.NormFloat64()))
			}
		}
	}
	return out, nil
}

func TestComputeMatchesReference(t *testing.T) {
	caps, _ := captions.Generate(50, 1)
	enc := &fakeEnc{d: 20}
	var seen []Progress
	cv, err := Compute(context.Background(), caps, fakeTok{}, enc, Options{Batch: 7, Workers: 2, Progress: func(p Progress) { seen = append(seen, p) }})
	if err != nil {
		t.Fatal(err)
	}
	var ids [][]int
	for _, c := range caps {
		ids = append(ids, fakeTok{}.IDs77(c))
	}
	all, _ := (&fakeEnc{d: 20}).Encode(context.Background(), ids)
	want := refMoment(all, 20, len(caps))
	for i := range want {
		if math.Abs(cv.C[i]-want[i]) > 1e-12*(1+math.Abs(want[i])) {
			t.Fatalf("C[%d] = %v, want %v", i, cv.C[i], want[i])
		}
	}
	if cv.Captions != 50 || cv.Tokens != 50*77 || enc.calls != 8 {
		t.Errorf("captions %d tokens %d calls %d", cv.Captions, cv.Tokens, enc.calls)
	}
	if len(seen) != 8 || seen[7].Done != 50 || seen[7].Total != 50 || seen[7].ETA != 0 || seen[0].Done != 7 {
		t.Errorf("progress %+v", seen)
	}
}

func TestComputeCancels(t *testing.T) {
	caps, _ := captions.Generate(100, 1)
	ctx, cancel := context.WithCancel(context.Background())
	enc := &fakeEnc{d: 8}
	_, err := Compute(ctx, caps, fakeTok{}, enc, Options{Batch: 10, Progress: func(p Progress) {
		if p.Done >= 20 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || enc.calls != 2 {
		t.Errorf("err %v after %d batches, want Canceled after 2", err, enc.calls)
	}
}

func TestGetCaches(t *testing.T) {
	dir := t.TempDir()
	caps, _ := captions.Generate(30, 2)
	enc := &fakeEnc{d: 12}
	req := Request{Captions: caps, CorpusHash: captions.Hash(caps), Tokenizer: fakeTok{}, Encoder: enc, EncoderHash: "enc1", CacheDir: dir}
	first, st, err := Get(context.Background(), req, Options{})
	if err != nil || st.Hit || st.Problem != nil {
		t.Fatalf("first Get: %v %+v", err, st)
	}
	if first.Key != Key("enc1", req.CorpusHash) || filepath.Base(st.Path) != "covariance-"+first.Key+".bin" {
		t.Errorf("key %q, path %q", first.Key, st.Path)
	}
	calls := enc.calls
	again, st, err := Get(context.Background(), req, Options{})
	if err != nil || !st.Hit || enc.calls != calls {
		t.Fatalf("second Get: %v %+v, encoder called %d more times", err, st, enc.calls-calls)
	}
	if !slices.Equal(again.C, first.C) || again.Captions != 30 || again.Tokens != 30*77 || again.Condition != first.Condition {
		t.Error("cached C differs")
	}
	// corrupt files are recomputed, never trusted
	raw, _ := os.ReadFile(st.Path)
	for _, bad := range [][]byte{raw[:len(raw)/2], flip(raw, 40), flip(raw, len(raw)-100), []byte("junk")} {
		os.WriteFile(st.Path, bad, 0o644)
		calls := enc.calls
		cv, st2, err := Get(context.Background(), req, Options{})
		if err != nil || st2.Hit || st2.Problem == nil || enc.calls == calls {
			t.Fatalf("corrupt cache: %v %+v", err, st2)
		}
		if !slices.Equal(cv.C, first.C) {
			t.Error("recomputed C differs")
		}
		if _, err := Load(st.Path, first.Key); err != nil {
			t.Errorf("cache not rewritten: %v", err)
		}
	}
	// another encoder is another C
	req.EncoderHash = "enc2"
	_, st, _ = Get(context.Background(), req, Options{})
	if st.Hit {
		t.Error("another encoder hash hit the cache")
	}
	if _, err := Load(CachePath(dir, first.Key), "wrong"); err == nil || !strings.Contains(err.Error(), "not") {
		t.Errorf("Load with another key: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x10
	return c
}

func TestWeightsHash(t *testing.T) {
	m := weights.Map{
		clip.Prefix + "a.weight":     {Data: []float32{1, 2, 3, 4}, Shape: []int{2, 2}},
		clip.Prefix + "b.bias":       {Data: []float32{0.5}, Shape: []int{1}},
		clip.Prefix + "position_ids": {Data: []float32{0, 1}, Shape: []int{1, 2}},
		"model.diffusion_model.x":    {Data: []float32{9}, Shape: []int{1}},
	}
	ctx := context.Background()
	h1, err := WeightsHash(ctx, m, clip.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	m["model.diffusion_model.x"] = weights.Tensor{Data: []float32{8}, Shape: []int{1}}
	m[clip.Prefix+"position_ids"] = weights.Tensor{Data: []float32{0, 1, 2}, Shape: []int{1, 3}}
	if h, _ := WeightsHash(ctx, m, clip.Prefix); h != h1 {
		t.Error("the hash depends on other tensors or the position-id buffer")
	}
	half := make([]uint16, 4)
	weights.Float32sToHalf(half, []float32{1, 2, 3, 4})
	m[clip.Prefix+"a.weight"] = weights.Tensor{Half: half, Shape: []int{2, 2}}
	if h, _ := WeightsHash(ctx, m, clip.Prefix); h != h1 {
		t.Error("float16 weights of the same values hash differently")
	}
	m[clip.Prefix+"b.bias"] = weights.Tensor{Data: []float32{0.25}, Shape: []int{1}}
	if h, _ := WeightsHash(ctx, m, clip.Prefix); h == h1 {
		t.Error("changed weights hash alike")
	}
	if _, err := WeightsHash(ctx, m, "nothing."); err == nil {
		t.Error("no tensors: no error")
	}
}

// TestTinyCLIP computes C with the golden tiny CLIP and tokenizer and
// checks it against encoding all captions in one batch.
func TestTinyCLIP(t *testing.T) {
	f := golden.Open(t, "tiny_clip_text.safetensors")
	src := weights.Safetensors(f)
	cfgJSON, err := os.ReadFile(golden.Path(t, "tiny_clip_text_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clip.ConfigFromJSON(cfgJSON)
	if err != nil {
		t.Fatal(err)
	}
	model, err := clip.Load(ops.CPU(), src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	vf, err := os.Open(golden.Path(t, "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer vf.Close()
	tok, err := tokenizer.FromGzipBPE(vf)
	if err != nil {
		t.Fatal(err)
	}
	caps, _ := captions.Generate(96, 3)
	p := &pipeline.Pipeline{Path: golden.Path(t, "tiny_clip_text.safetensors"), CLIP: model, Tokenizer: tok}
	cacheDir := t.TempDir()
	cv, st, err := ForPipeline(context.Background(), p, caps, cacheDir, Options{Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(cv.Summary(), "; cache:", st.Path)
	if again, st, err := ForPipeline(context.Background(), p, caps, cacheDir, Options{}); err != nil || !st.Hit || again.Key != cv.Key {
		t.Errorf("second ForPipeline: %v, %+v", err, st)
	}
	var ids []int
	for _, c := range caps {
		ids = append(ids, tok.IDs77(c)...)
	}
	out, err := model.Forward(ids, len(caps))
	if err != nil {
		t.Fatal(err)
	}
	want := refMoment(out.Data(), cfg.HiddenSize, len(caps))
	for i := range want {
		if math.Abs(cv.C[i]-want[i]) > 1e-5*(1+math.Abs(want[i])) {
			t.Fatalf("C[%d] = %v, want %v", i, cv.C[i], want[i])
		}
	}
	// The tiny random model's C is dominated by a few directions (condition
	// ≈ 5·10⁶ here): the ridge must have been added, and have bounded it.
	if cv.D != cfg.HiddenSize || (cv.Condition > MaxCondition) != (cv.Ridge > 0) ||
		cv.FactoredCondition() > float64(cv.D)/RidgeEpsilon+1 {
		t.Errorf("D %d, condition %g, ridge %g, condition after %g", cv.D, cv.Condition, cv.Ridge, cv.FactoredCondition())
	}
}

func TestCheckpointEncoderHash(t *testing.T) {
	p := golden.Path(t, "tiny_clip_text.safetensors")
	got, err := CheckpointEncoderHash(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := WeightsHash(context.Background(), weights.Safetensors(golden.Open(t, "tiny_clip_text.safetensors")), clip.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || len(got) != 16 {
		t.Errorf("checkpoint hash %q, weights hash %q", got, want)
	}
}

// Covariance is the metric the edit package takes.
var _ interface{ MulInverse(v []float64) []float64 } = (*Covariance)(nil)

// FuzzDecodeCache: a cache file's bytes, however broken, give a C or an
// error, never a panic.
func FuzzDecodeCache(f *testing.F) {
	cv, err := Factor([]float64{2, 1, 1, 3}, 2)
	if err != nil {
		f.Fatal(err)
	}
	cv.Key, cv.Captions, cv.Tokens = "k", 1, 77
	p := filepath.Join(f.TempDir(), "c.bin")
	if err := Save(p, cv); err != nil {
		f.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	f.Add(raw)
	f.Add(raw[:30])
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, err := decodeCache(data, "k"); err == nil && got.D*got.D != len(got.C) {
			t.Fatalf("accepted C of %d values for D = %d", len(got.C), got.D)
		}
	})
}
