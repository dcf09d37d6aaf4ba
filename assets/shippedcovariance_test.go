package assets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// TestDefaultModelShippedCovariance checks that the C shipped in the
// embedded default model (covariance.ShippedFile) is the one the app asks
// for: its key is that of the installed model's text encoder and the
// built-in caption corpus, and it is read without computing.
func TestDefaultModelShippedCovariance(t *testing.T) {
	if _, err := fs.Stat(DefaultModelFS(), covariance.ShippedFile); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("assets/defaultmodel has no %s yet (the lead writes it once the model is final: "+
			"go run ./assets/internal/mkdefault -covariance -out assets/defaultmodel)", covariance.ShippedFile)
	}
	p, _ := loadDefault(t)
	if err := shippedCovarianceFits(context.Background(), p, captions.Default()); err != nil {
		t.Fatalf("%v\nwrite it again: go run ./assets/internal/mkdefault -covariance -out assets/defaultmodel", err)
	}
}

// shippedCovarianceFits says why the folder p was loaded from does not
// carry a C that the app uses for the corpus caps (none, or one that
// covariance.Get passes over), or nil when it does. It never computes C.
func shippedCovarianceFits(ctx context.Context, p *pipeline.Pipeline, caps []string) error {
	req, err := covariance.PipelineRequest(ctx, p, caps, "")
	if err != nil {
		return err
	}
	if req.Shipped == "" {
		return fmt.Errorf("%s is not a folder", p.Path)
	}
	if _, err := os.Stat(req.Shipped); err != nil {
		return err
	}
	// A cancelled context: Get returns the shipped C or stops before
	// encoding a caption.
	stop, cancel := context.WithCancel(ctx)
	cancel()
	cv, st, err := covariance.Get(stop, req, covariance.Options{})
	switch {
	case st.Problem != nil:
		return st.Problem
	case err != nil:
		return fmt.Errorf("%s not used: %w", req.Shipped, err)
	case !st.Shipped || cv.Key != covariance.Key(req.EncoderHash, req.CorpusHash):
		return fmt.Errorf("%s not used (%+v)", req.Shipped, st)
	case cv.D != p.CLIP.Config.HiddenSize || cv.Captions != len(caps):
		return fmt.Errorf("%s: C %d wide from %d captions, want %d and %d", req.Shipped, cv.D, cv.Captions, p.CLIP.Config.HiddenSize, len(caps))
	}
	return nil
}

// TestShippedCovarianceFits checks the check above on the tiny model, so
// that it is known to work before the default model carries its C.
func TestShippedCovarianceFits(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "model")
	golden.CopyDir(t, golden.Path(t, "tiny_diffusers"), dir)
	p, err := pipeline.Load(ctx, dir, pipeline.LoadOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	caps, _ := captions.Generate(40, 1)
	if err := shippedCovarianceFits(ctx, p, caps); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no file: %v", err)
	}
	path, _, err := covariance.WriteShipped(ctx, p, caps, covariance.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := shippedCovarianceFits(ctx, p, caps); err != nil {
		t.Errorf("the file just written: %v", err)
	}
	other, _ := captions.Generate(40, 2)
	if err := shippedCovarianceFits(ctx, p, other); err == nil || !strings.Contains(err.Error(), "holds C") {
		t.Errorf("another corpus: %v", err)
	}
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, raw[:len(raw)-1], 0o644)
	if err := shippedCovarianceFits(ctx, p, caps); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("truncated file: %v", err)
	}
}
