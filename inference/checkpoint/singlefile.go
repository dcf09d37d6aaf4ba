package checkpoint

import (
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/ckpt"
	"github.com/perfusion-studio/perfusion/inference/internal/regfile"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// openSingle opens one weights file, tells safetensors from a PyTorch zip
// by its first bytes, and normalises its names to the canonical keys.
func openSingle(path string, opt Options) (*Checkpoint, error) {
	raw, kind, closer, err := readWeights(path)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{kind: kind, tensors: raw, closers: []io.Closer{closer}, sources: []string{path}}
	c.normalise(opt)
	return c, nil
}

// readWeights opens one weights file and lists its tensors under their
// stored names.
func readWeights(path string) (map[string]*entry, Kind, io.Closer, error) {
	f, size, err := regfile.Open(path)
	if err != nil {
		if _, ok := err.(*fs.PathError); ok {
			return nil, 0, nil, fmt.Errorf("checkpoint: %w", err)
		}
		return nil, 0, nil, fmt.Errorf("checkpoint: %w: %w", err, ErrFormat)
	}
	head := make([]byte, safetensors.SniffSize)
	n, _ := f.ReadAt(head, 0)
	head = head[:n]
	out := map[string]*entry{}
	kind := KindSafetensors
	isST := n >= 9 && head[8] == '{' // safetensors: 8-byte header length, then '{'
	isZip := strings.HasPrefix(string(head), "PK")
	if what := safetensors.Sniff(head); !isST && !isZip && n > 0 && head[0] != 0x80 && what != "" {
		f.Close()
		return nil, 0, nil, fmt.Errorf("checkpoint: %s is %s, not a model file (.safetensors, or a PyTorch .ckpt/.pt/.bin): %w", path, what, ErrFormat)
	}
	if !isST && (isZip || (n > 0 && head[0] == 0x80)) {
		kind = KindPickle
		cf, err := ckpt.NewReader(f, size)
		if err != nil {
			f.Close()
			return nil, 0, nil, fmt.Errorf("checkpoint: %s: %w", path, classify(err))
		}
		for _, name := range cf.Names() {
			t, _ := cf.Tensor(name)
			out[name] = &entry{dtype: t.DType, shape: t.Shape, origin: path + ": " + name, read: t.Bytes}
		}
	} else {
		sf, err := safetensors.OpenFile(f, size) // maps large files (see safetensors.File.View)
		if err != nil {
			f.Close()
			return nil, 0, nil, fmt.Errorf("checkpoint: %s: %w", path, classify(err))
		}
		for _, name := range sf.Names() {
			info, _ := sf.Info(name)
			read := func() ([]byte, error) { b, _, err := sf.Bytes(name); return b, err }
			view := func() ([]byte, any, error) { b, _, keep, err := sf.View(name); return b, keep, err }
			out[name] = &entry{dtype: info.DType, shape: info.Shape, origin: path + ": " + name, read: read, view: view}
		}
		return out, kind, sf, nil // closing sf closes f
	}
	return out, kind, f, nil
}

// textRenames maps the CLIP names of old transformers versions (no
// text_model. level) to the current ones, as SD1 checkpoints made with
// them store.
var textRenames = []struct{ old, new string }{
	{"cond_stage_model.transformer.embeddings.", "cond_stage_model.transformer.text_model.embeddings."},
	{"cond_stage_model.transformer.encoder.", "cond_stage_model.transformer.text_model.encoder."},
	{"cond_stage_model.transformer.final_layer_norm.", "cond_stage_model.transformer.text_model.final_layer_norm."},
}

// normalise renames single-file variants to the canonical keys: old CLIP
// names, linear ([C, C]) VAE attention weights reshaped to the CompVis 1x1
// convolutions ([C, C, 1, 1], same bytes), and the EMA choice.
func (c *Checkpoint) normalise(opt Options) {
	for name, e := range c.tensors {
		for _, r := range textRenames {
			if strings.HasPrefix(name, r.old) {
				canon := r.new + strings.TrimPrefix(name, r.old)
				if _, taken := c.tensors[canon]; !taken {
					c.tensors[canon] = e
					delete(c.tensors, name)
				}
			}
		}
	}
	for name, e := range c.tensors {
		if isVAEAttnWeight(name) && len(e.shape) == 2 {
			e.shape = []int{e.shape[0], e.shape[1], 1, 1}
		}
	}
	c.ema = useEMA(c.tensors, opt.UseEMA)
}

// isVAEAttnWeight matches first_stage_model.{encoder,decoder}.mid.attn_1.
// {q,k,v,proj_out}.weight.
func isVAEAttnWeight(name string) bool {
	for _, part := range []string{"encoder", "decoder"} {
		for _, w := range []string{"q", "k", "v", "proj_out"} {
			if name == "first_stage_model."+part+".mid.attn_1."+w+".weight" {
				return true
			}
		}
	}
	return false
}
