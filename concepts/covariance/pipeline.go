package covariance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/inference/checkpoint"
	"github.com/perfusion-studio/perfusion/inference/clip"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// CheckpointEncoderHash is WeightsHash of the text encoder in the
// checkpoint file or diffusers folder at path (it reads the text encoder's
// weights once, about 0.5 GB for SD1.5).
func CheckpointEncoderHash(ctx context.Context, path string) (string, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return "", fmt.Errorf("covariance: %w", err)
	}
	defer ck.Close()
	return WeightsHash(ctx, ck, clip.Prefix)
}

// ShippedFile is where a model folder (a diffusers folder, such as the
// embedded default model) may carry its text encoder's C for the built-in
// caption corpus, in the cache file format (Save), so that C need not be
// computed on first use. Its path separators are slashes.
const ShippedFile = "perfusion/covariance.bin"

// ShippedPath is the shipped C file of the model at path: path/ShippedFile
// when path is a folder, "" for a single-file checkpoint.
func ShippedPath(model string) string {
	if st, err := os.Stat(model); err != nil || !st.IsDir() {
		return ""
	}
	return filepath.Join(model, filepath.FromSlash(ShippedFile))
}

// PipelineRequest is the Request for a loaded model (its Path, Tokenizer
// and CLIP) and a caption corpus, with the model folder's shipped C file
// (ShippedPath) and the cache in cacheDir ("" for none).
func PipelineRequest(ctx context.Context, p *pipeline.Pipeline, caps []string, cacheDir string) (Request, error) {
	eh, err := CheckpointEncoderHash(ctx, p.Path)
	if err != nil {
		return Request{}, err
	}
	return Request{
		Captions: caps, CorpusHash: captions.Hash(caps),
		Tokenizer: p.Tokenizer, Encoder: CLIPEncoder{p.CLIP},
		EncoderHash: eh, CacheDir: cacheDir, Shipped: ShippedPath(p.Path),
	}, nil
}

// ForPipeline returns C for a loaded model and a caption corpus (the app
// passes captions.Default()) as Get does for PipelineRequest: from the C
// file shipped in the model folder when it fits, else from the cache in
// cacheDir when it holds it, otherwise computed with opt's progress and
// ctx's cancellation, then cached. It only reads the model, so it may run
// beside generations.
func ForPipeline(ctx context.Context, p *pipeline.Pipeline, caps []string, cacheDir string, opt Options) (*Covariance, CacheStatus, error) {
	req, err := PipelineRequest(ctx, p, caps, cacheDir)
	if err != nil {
		return nil, CacheStatus{}, err
	}
	return Get(ctx, req, opt)
}

// WriteShipped computes C of the model folder p.Path for the corpus caps
// exactly as ForPipeline asks for it (PipelineRequest: the same Key), never
// reading a C the folder or a cache holds, and writes it atomically to the
// folder's ShippedFile, where ForPipeline then finds it. It returns that
// file and C. Model builders call it with captions.Default(), the app's
// corpus.
func WriteShipped(ctx context.Context, p *pipeline.Pipeline, caps []string, opt Options) (string, *Covariance, error) {
	path := ShippedPath(p.Path)
	if path == "" {
		return "", nil, fmt.Errorf("covariance: %s is not a model folder: only a folder carries a shipped C", p.Path)
	}
	req, err := PipelineRequest(ctx, p, caps, "")
	if err != nil {
		return "", nil, err
	}
	req.Shipped = "" // compute afresh, whatever the folder holds now
	cv, _, err := Get(ctx, req, opt)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", nil, fmt.Errorf("covariance: %w", err)
	}
	if err := Save(path, cv); err != nil {
		return "", nil, fmt.Errorf("covariance: write the shipped C: %w", err)
	}
	return path, cv, nil
}
