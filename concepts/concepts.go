// Package concepts joins Perfusion's pieces for generation: it turns a
// concept file (conceptfile) into the edit's concept (edit.Concept) for a
// loaded pipeline, and back for saving; gets the model's covariance C
// (covariance, cached on disk); and builds the edit.Set of a generation
// from the concepts a prompt uses, each with its own gate (β, τ), and the
// multi-concept and key-locking options (PERFUSION.md §3.5, §3.6, §7).
//
// A concept named tubby is written <tubby> in prompts (Placeholder); names
// compare case-insensitively, as the CLIP tokenizer lower-cases prompts.
package concepts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// Placeholder is how the concept name is written in prompts: "<name>".
func Placeholder(name string) string { return "<" + name + ">" }

// BaseHash identifies the base model at path for concept files: the web
// UI's model hash of a checkpoint file (pipeline.ModelHash, what training
// records), or for a diffusers folder, which has no file hash, a hash of
// all its weights' values (covariance.WeightsHash over every tensor;
// seconds for SD1.5). It stops with ctx's error.
func BaseHash(ctx context.Context, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("concepts: base model: %w", err)
	}
	if !st.IsDir() {
		return pipeline.ModelHash(ctx, path)
	}
	ck, err := checkpoint.Open(path)
	if err != nil {
		return "", fmt.Errorf("concepts: base model: %w", err)
	}
	defer ck.Close()
	h, err := covariance.WeightsHash(ctx, ck, "")
	if err != nil {
		return "", fmt.Errorf("concepts: base model %s: %w", filepath.Base(path), err)
	}
	return h, nil
}

// FromFile returns the concept in f as the edit uses it with pipeline p,
// whose BaseHash is baseHash: its word is Placeholder(f.Name) and its gate
// the file's default. It refuses a concept trained on another base model
// (a *conceptfile.BaseMismatchError, which errors.Is matches with
// conceptfile.ErrBaseMismatch, naming both models) and one whose sizes or
// layers do not fit p. The concept shares f's slices (neither changes
// them).
func FromFile(f *conceptfile.Concept, p *pipeline.Pipeline, baseHash string) (*edit.Concept, error) {
	if err := f.CheckBase(baseHash); err != nil {
		return nil, fmt.Errorf("%w (loaded: %s)", err, filepath.Base(p.Path))
	}
	d := p.CLIP.Config.HiddenSize
	if len(f.Embedding) != d || len(f.TargetInput) != d {
		return nil, fmt.Errorf("concepts: concept %q has encodings of %d values, the model's text width is %d", f.Name, len(f.Embedding), d)
	}
	xs := p.UNet.CrossAttentions()
	if len(f.Layers) != len(xs) {
		return nil, fmt.Errorf("concepts: concept %q has %d layers, the model has %d cross-attention layers", f.Name, len(f.Layers), len(xs))
	}
	byName := make(map[string]conceptfile.Layer, len(f.Layers))
	for _, l := range f.Layers {
		byName[l.Name] = l
	}
	layers := make(map[string]edit.Targets, len(xs))
	for _, x := range xs {
		l, ok := byName[x.Name]
		if !ok {
			return nil, fmt.Errorf("concepts: concept %q has no targets for the model's layer %s", f.Name, x.Name)
		}
		if out := x.ToK.Dim(0); len(l.OutK) != out || len(l.OutV) != x.ToV.Dim(0) {
			return nil, fmt.Errorf("concepts: concept %q: layer %s has targets of %d and %d values, the model's projections give %d and %d",
				f.Name, x.Name, len(l.OutK), len(l.OutV), out, x.ToV.Dim(0))
		}
		k, err := tensor.New(l.OutK, len(l.OutK))
		if err != nil {
			return nil, fmt.Errorf("concepts: %w", err)
		}
		v, err := tensor.New(l.OutV, len(l.OutV))
		if err != nil {
			return nil, fmt.Errorf("concepts: %w", err)
		}
		layers[x.Name] = edit.Targets{K: k, V: v}
	}
	emb, err := tensor.New(f.Embedding, d)
	if err != nil {
		return nil, fmt.Errorf("concepts: %w", err)
	}
	return &edit.Concept{
		Name: f.Name, Word: Placeholder(f.Name), Embedding: emb, Input: f.TargetInput,
		Superclass: f.Superclass, Beta: f.Beta, Tau: f.Tau, Layers: layers,
	}, nil
}

// Meta is what a concept file records besides the edit's tensors.
type Meta struct {
	BaseModel  string          // BaseHash of the model it was trained on
	Covariance string          // the Key of the C it was trained with
	Training   json.RawMessage // training settings (JSON object), may be nil
	Created    string          // RFC 3339 time, may be ""
	Thumbnail  []byte          // PNG (conceptfile.Thumbnail), may be nil
}

// ToFile returns c as a concept file for pipeline p (layers in the UNet's
// order, the superclass token looked up in p's tokenizer). Its name is
// c.Word without the angle brackets (else c.Name); its default gate is
// c's β and τ. The tensors are copied.
func ToFile(c *edit.Concept, p *pipeline.Pipeline, m Meta) (*conceptfile.Concept, error) {
	name := c.Name
	if w, ok := strings.CutPrefix(c.Word, "<"); ok {
		if w, ok = strings.CutSuffix(w, ">"); ok {
			name = w
		}
	}
	if err := conceptfile.ValidName(name); err != nil {
		return nil, err
	}
	ids, ok := p.Tokenizer.Lookup(c.Superclass)
	if !ok || len(ids) != 1 {
		return nil, fmt.Errorf("concepts: concept %q: superclass %q is not one token of the model's vocabulary", name, c.Superclass)
	}
	f := &conceptfile.Concept{
		Header: conceptfile.Header{
			Name: name, Superclass: c.Superclass, SuperclassToken: ids[0], Beta: c.Beta, Tau: c.Tau,
			BaseModel: m.BaseModel, Covariance: m.Covariance, Training: m.Training, Created: m.Created,
			Dim: len(c.Input),
		},
		Embedding:   append([]float32(nil), c.Embedding.Data()...),
		TargetInput: append([]float32(nil), c.Input...),
		Thumbnail:   m.Thumbnail,
	}
	for _, x := range p.UNet.CrossAttentions() {
		t, ok := c.Layers[x.Name]
		if !ok {
			return nil, fmt.Errorf("concepts: concept %q has no targets for layer %s", name, x.Name)
		}
		if t.K.Size() != x.ToK.Dim(0) || t.V.Size() != x.ToV.Dim(0) {
			return nil, fmt.Errorf("concepts: concept %q: layer %s targets %v and %v: save one vector per layer, of the projection's size", name, x.Name, t.K, t.V)
		}
		f.Layers = append(f.Layers, conceptfile.Layer{Name: x.Name,
			OutK: append([]float32(nil), t.K.Data()...), OutV: append([]float32(nil), t.V.Data()...)})
	}
	if len(c.Layers) != len(f.Layers) {
		return nil, fmt.Errorf("concepts: concept %q has targets for %d layers, the model has %d", name, len(c.Layers), len(f.Layers))
	}
	return f, nil
}

// FileHash identifies a concept file's bytes (compositions record it): the
// first 10 hex digits of their SHA-256.
func FileHash(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:5])
}
