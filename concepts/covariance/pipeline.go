package covariance

import (
	"context"
	"fmt"

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

// ForPipeline returns C for a loaded model (its Path, Tokenizer and CLIP)
// and a caption corpus (the app passes captions.Default()), from the cache
// in cacheDir when it holds it, otherwise computed with opt's progress and
// ctx's cancellation, then cached. It only reads the model, so it may run
// beside generations.
func ForPipeline(ctx context.Context, p *pipeline.Pipeline, caps []string, cacheDir string, opt Options) (*Covariance, CacheStatus, error) {
	eh, err := CheckpointEncoderHash(ctx, p.Path)
	if err != nil {
		return nil, CacheStatus{}, err
	}
	return Get(ctx, Request{
		Captions: caps, CorpusHash: captions.Hash(caps),
		Tokenizer: p.Tokenizer, Encoder: CLIPEncoder{p.CLIP},
		EncoderHash: eh, CacheDir: cacheDir,
	}, opt)
}
