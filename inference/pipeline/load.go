package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/inference/sampler"
	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/inference/unet"
	"github.com/perfusion-studio/perfusion/inference/vae"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// LoadOptions change how Load finds and builds the models. The zero value
// loads a checkpoint with the configs its folder or its tensor shapes give,
// and the tokenizer tokenizer.Locate finds.
type LoadOptions struct {
	// Tokenizer is a vocabulary to use instead of searching: openai's
	// bpe_simple_vocab_16e6.txt(.gz), a vocab.json or merges.txt (its pair
	// is taken from the same folder), or a folder holding either.
	Tokenizer string
	// DataDir is the app's data folder, the last place searched for a
	// vocabulary (see tokenizer.Locate).
	DataDir string
	// FallbackBPE is the vocabulary used when Tokenizer is empty and
	// tokenizer.Locate finds none: the bytes of openai's
	// bpe_simple_vocab_16e6.txt, gzipped or not (a program's built-in
	// copy; see tokenizer.Source.BPEData). "" means none: a checkpoint
	// without a vocabulary is an error.
	FallbackBPE string
	// CLIP, UNet and VAE, when set, replace the configs otherwise read from
	// a diffusers folder's config.json or detected from tensor shapes.
	// Shapes cannot tell a model's attention head count: detection assumes
	// SD1.5's, so a differently-headed single-file model needs its config.
	CLIP *clip.Config
	UNet *unet.Config
	VAE  *vae.Config
	// Engine runs the models; nil means ops.CPU().
	Engine *ops.Engine
	// Half says which layer weights are held as float16 (see
	// blocks.HalfMode); the zero value, blocks.HalfAsStored, keeps a
	// float16 checkpoint's layer weights as float16, halving their memory
	// at no cost in accuracy.
	Half blocks.HalfMode
	// Progress, when set, is called with the fraction of the weights read
	// so far (0 to 1), often: after every tensor. The models load on
	// several goroutines; the calls come one at a time, with growing
	// fractions.
	Progress func(fraction float64)
}

// Load opens the checkpoint at path (a .safetensors / .ckpt file or a
// diffusers folder), checks that it is an SD1.x text-to-image model, finds
// its tokenizer and loads its three models. It is cancelled through ctx,
// also while reading weights.
//
// On Unix a .safetensors file (also inside a diffusers folder) is mapped
// into memory rather than read: float16 layer weights kept as float16 are
// used in place, so loading costs little more than the float32 tensors it
// converts, and the weights are page cache the system can share and
// reclaim. The models hold the mapping for as long as any of them is
// reachable; the file is closed when Load returns, and deleting or
// renaming it is harmless. A file truncated before Load is an error, but
// one truncated or rewritten in place while its models live makes them
// fault (SIGBUS): replace model files by writing a new file and renaming
// it over the old one, as every safe writer does.
func Load(ctx context.Context, path string, opt LoadOptions) (*Pipeline, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opt.Half < blocks.HalfAsStored || opt.Half > blocks.HalfAlways {
		return nil, fmt.Errorf("pipeline: unknown float16 mode %d (want blocks.HalfAsStored, HalfNever or HalfAlways)", opt.Half)
	}
	ck, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	defer ck.Close()
	if err := ck.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	arch, _ := ck.Architecture()

	// Everything cheap first, so a bad config or a missing vocabulary is
	// reported before gigabytes are read.
	cc, uc, vc, err := configs(ck, opt)
	if err != nil {
		return nil, err
	}
	tok, tsrc, err := openTokenizer(path, opt)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > cc.VocabSize {
		if tsrc.BPEData != "" {
			return nil, fmt.Errorf("pipeline: the text encoder has %d embeddings, fewer than the %d ids of the built-in CLIP vocabulary, used because none was found beside the model: give the model's own vocabulary (put it beside the checkpoint, or pass it as the tokenizer)", cc.VocabSize, tok.VocabSize())
		}
		return nil, fmt.Errorf("pipeline: the tokenizer has %d ids but the text encoder only %d embeddings", tok.VocabSize(), cc.VocabSize)
	}

	e := opt.Engine
	if e == nil {
		e = ops.CPU()
	}
	src := newProgressSource(ctx, ck, opt.Progress, clip.Prefix, unet.Prefix, vae.Prefix)
	p := &Pipeline{Path: path, Arch: arch, Engine: e, Tokenizer: tok, Schedule: sampler.SD15()}
	p.sources = ck.Sources()
	for _, f := range []string{tsrc.BPE, tsrc.Vocab, tsrc.Merges} {
		if f != "" {
			p.sources = append(p.sources, f)
		}
	}
	load := func(what string, fn func() error) error {
		if err := fn(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pipeline: load %s: %w", what, err)
		}
		return ctx.Err()
	}
	// The three models load at the same time: each converts its own
	// float32 tensors, and the checkpoint serves concurrent reads.
	bo := blocks.LoadOptions{Half: opt.Half}
	var errs [3]error
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = load("text encoder", func() (err error) { p.CLIP, err = clip.Load(e, src, cc, bo); return })
	})
	wg.Go(func() { errs[1] = load("UNet", func() (err error) { p.UNet, err = unet.Load(e, src, uc, bo); return }) })
	wg.Go(func() { errs[2] = load("VAE", func() (err error) { p.VAE, err = vae.Load(e, src, vc, bo); return }) })
	wg.Wait()
	for _, err := range errs { // in model order, so the error reported does not depend on timing
		if err != nil {
			return nil, err
		}
	}
	if err := p.checkWidths(); err != nil {
		return nil, err
	}
	src.done()
	return p, nil
}

// configs picks each model's config: the override, else the diffusers
// folder's config.json, else detection from the tensor shapes.
func configs(ck *checkpoint.Checkpoint, opt LoadOptions) (clip.Config, unet.Config, vae.Config, error) {
	cc, err := pick(opt.CLIP, ck, "text_encoder", clip.ConfigFromJSON, clip.Detect)
	if err != nil {
		return clip.Config{}, unet.Config{}, vae.Config{}, fmt.Errorf("pipeline: text encoder config: %w", err)
	}
	uc, err := pick(opt.UNet, ck, "unet", unet.ConfigFromJSON, unet.Detect)
	if err != nil {
		return clip.Config{}, unet.Config{}, vae.Config{}, fmt.Errorf("pipeline: UNet config: %w", err)
	}
	vc, err := pick(opt.VAE, ck, "vae", vae.ConfigFromJSON, vae.Detect)
	if err != nil {
		return clip.Config{}, unet.Config{}, vae.Config{}, fmt.Errorf("pipeline: VAE config: %w", err)
	}
	return cc, uc, vc, nil
}

// pick returns the override, the parsed component config.json, or the
// detected config, in that order.
func pick[C interface{ Validate() error }](override *C, ck *checkpoint.Checkpoint, component string,
	fromJSON func([]byte) (C, error), detect func(weights.Source) (C, error)) (C, error) {
	var c C
	var err error
	switch raw, ok := ck.Config(component); {
	case override != nil:
		c = *override
	case ok:
		if c, err = fromJSON(raw); err != nil {
			return c, fmt.Errorf("%s/config.json: %w", component, err)
		}
	default:
		if c, err = detect(ck); err != nil {
			return c, err
		}
	}
	return c, c.Validate()
}

// checkWidths checks that the models fit together: latent channels and the
// text width the UNet attends to.
func (p *Pipeline) checkWidths() error {
	u, v, c := p.UNet.Config, p.VAE.Config, p.CLIP.Config
	if u.InChannels != v.EmbedDim || u.OutChannels != v.EmbedDim {
		return fmt.Errorf("pipeline: the UNet takes %d and gives %d latent channels but the VAE has %d", u.InChannels, u.OutChannels, v.EmbedDim)
	}
	if u.ContextDim != c.HiddenSize {
		return fmt.Errorf("pipeline: the UNet attends to %d-wide text but the text encoder is %d wide", u.ContextDim, c.HiddenSize)
	}
	return nil
}

// OpenTokenizer loads the tokenizer Load uses for the checkpoint at ckpt:
// opt.Tokenizer if set, else the vocabulary tokenizer.Locate finds (beside
// the checkpoint, in its diffusers folder, the Hugging Face cache, then
// opt.DataDir), else opt.FallbackBPE. With ckpt "" and no opt.Tokenizer
// it loads opt.FallbackBPE without searching. Like SD1.5's Hugging Face
// CLIPTokenizer it skips openai's html.unescape.
func OpenTokenizer(ckpt string, opt LoadOptions) (*tokenizer.Tokenizer, error) {
	tok, _, err := openTokenizer(ckpt, opt)
	return tok, err
}

// openTokenizer is OpenTokenizer, also returning where the vocabulary
// came from.
func openTokenizer(ckpt string, opt LoadOptions) (*tokenizer.Tokenizer, tokenizer.Source, error) {
	var src tokenizer.Source
	var err error
	var nf *tokenizer.NotFoundError
	switch {
	case opt.Tokenizer != "":
		src, err = tokenizerAt(opt.Tokenizer)
	case ckpt == "" && opt.FallbackBPE != "":
		src = tokenizer.Source{BPEData: opt.FallbackBPE}
	default:
		src, err = tokenizer.Locate(ckpt, opt.DataDir)
		if errors.As(err, &nf) && opt.FallbackBPE != "" {
			src, err = tokenizer.Source{BPEData: opt.FallbackBPE}, nil
		}
	}
	if err != nil {
		return nil, src, fmt.Errorf("pipeline: %w", err)
	}
	tok, err := tokenizer.Load(src)
	if err != nil {
		return nil, src, fmt.Errorf("pipeline: tokenizer: %w", err)
	}
	tok.SkipHTMLUnescape = true
	return tok, src, nil
}

// Sources lists every file the pipeline was loaded from: the checkpoint's
// weight and config files (see checkpoint.Checkpoint.Sources) and the
// tokenizer's vocabulary.
func (p *Pipeline) Sources() []string { return append([]string(nil), p.sources...) }

// CheckOutput refuses an output path that names one of the files the
// pipeline was loaded from (the same file under any name: a link, another
// path), so that saving an image never replaces the model. A path that
// does not exist yet is fine.
func (p *Pipeline) CheckOutput(path string) error {
	out, err := os.Stat(path)
	if err != nil {
		return nil // nothing there to overwrite; writing will report other problems
	}
	for _, src := range p.sources {
		if st, err := os.Stat(src); err == nil && os.SameFile(out, st) {
			what := "the model file"
			if filepath.Clean(src) != filepath.Clean(p.Path) {
				what = "a file the model was loaded from"
			}
			return fmt.Errorf("pipeline: %s is %s (%s): writing there would replace it, choose another output name", path, what, src)
		}
	}
	return nil
}

// tokenizerAt resolves an explicit vocabulary path (see
// LoadOptions.Tokenizer).
func tokenizerAt(path string) (tokenizer.Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return tokenizer.Source{}, fmt.Errorf("tokenizer: %w", err)
	}
	pair := func(dir string) (tokenizer.Source, bool) {
		v, m := filepath.Join(dir, tokenizer.VocabFile), filepath.Join(dir, tokenizer.MergesFile)
		return tokenizer.Source{Vocab: v, Merges: m}, isFile(v) && isFile(m)
	}
	if !st.IsDir() {
		switch filepath.Base(path) {
		case tokenizer.VocabFile, tokenizer.MergesFile:
			if src, ok := pair(filepath.Dir(path)); ok {
				return src, nil
			}
			return tokenizer.Source{}, fmt.Errorf("tokenizer: %s needs both %s and %s in %s", path, tokenizer.VocabFile, tokenizer.MergesFile, filepath.Dir(path))
		}
		return tokenizer.Source{BPE: path}, nil
	}
	for _, name := range []string{tokenizer.BPEFile, strings.TrimSuffix(tokenizer.BPEFile, ".gz")} {
		if p := filepath.Join(path, name); isFile(p) {
			return tokenizer.Source{BPE: p}, nil
		}
	}
	for _, dir := range []string{path, filepath.Join(path, "tokenizer")} {
		if src, ok := pair(dir); ok {
			return src, nil
		}
	}
	return tokenizer.Source{}, fmt.Errorf("tokenizer: %s holds neither %s nor %s + %s", path, tokenizer.BPEFile, tokenizer.VocabFile, tokenizer.MergesFile)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// progressSource is the checkpoint as a weights.Source that counts the
// values read, reports the fraction, and fails reads once ctx is done.
type progressSource struct {
	weights.Source
	ctx      context.Context
	report   func(float64)
	mu       sync.Mutex
	total    int64 // values under the model prefixes
	read     int64
	reported float64
}

func newProgressSource(ctx context.Context, src weights.Source, report func(float64), prefixes ...string) *progressSource {
	s := &progressSource{Source: src, ctx: ctx, report: report}
	for _, n := range src.Names() {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) {
				sh, _ := src.Shape(n)
				s.total += int64(tensor.Numel(sh))
				break
			}
		}
	}
	if report != nil {
		report(0)
	}
	return s
}

func (s *progressSource) Float32(name string) ([]float32, []int, error) {
	if err := s.ctx.Err(); err != nil {
		return nil, nil, err
	}
	v, sh, err := s.Source.Float32(name)
	if err == nil {
		s.count(len(v))
	}
	return v, sh, err
}

// halfSource is what a source that hands out float16 tensors unconverted
// offers (a checkpoint does); the progress source passes it through so
// loaders can keep such weights as float16.
type halfSource interface {
	DType(name string) string
	Half(name string) ([]uint16, []int, error)
}

// DType is the stored dtype of a tensor ("F32" when the source cannot tell).
func (s *progressSource) DType(name string) string {
	if h, ok := s.Source.(halfSource); ok {
		return h.DType(name)
	}
	if _, ok := s.Source.Shape(name); ok {
		return "F32"
	}
	return ""
}

// Half reads a float16 tensor unconverted, counting it as Float32 does.
func (s *progressSource) Half(name string) ([]uint16, []int, error) {
	if err := s.ctx.Err(); err != nil {
		return nil, nil, err
	}
	h, ok := s.Source.(halfSource)
	if !ok {
		return nil, nil, fmt.Errorf("pipeline: tensor %q is not stored as F16", name)
	}
	v, sh, err := h.Half(name)
	if err == nil {
		s.count(len(v))
	}
	return v, sh, err
}

// HalfView lends a float16 tensor (see weights.HalfViewer), counting it as
// Half does.
func (s *progressSource) HalfView(name string) ([]uint16, any, []int, error) {
	if err := s.ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	v, keep, sh, err := weights.HalfView(s.Source, name)
	if err == nil {
		s.count(len(v))
	}
	return v, keep, sh, err
}

// count adds n values read and reports the fraction when it grew.
func (s *progressSource) count(n int) {
	if s.report == nil || s.total == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock() // the models load concurrently: one report at a time, growing
	s.read += int64(n)
	if f := min(float64(s.read)/float64(s.total), 1); f > s.reported {
		s.reported = f
		s.report(f)
	}
}

// done reports completion (tensors outside the models, like CLIP's
// position_ids, may keep the count under the total).
func (s *progressSource) done() {
	if s.report != nil && s.reported < 1 {
		s.report(1)
	}
}
