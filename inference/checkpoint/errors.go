package checkpoint

import (
	"errors"
	"fmt"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/ckpt"
	"github.com/perfusion-studio/perfusion/inference/safetensors"
)

// ErrFormat is wrapped by errors about bad input: a damaged or truncated
// file, a file that is not a model, missing or misshapen tensors.
var ErrFormat = errors.New("invalid checkpoint")

// ErrUnsupported is wrapped by errors about valid input this program does
// not handle yet: SD 2.x, SDXL, inpainting models, legacy pickles, refused
// pickle content.
var ErrUnsupported = errors.New("unsupported checkpoint")

// classified is a reader's error that also matches this package's sentinel.
type classified struct{ err, kind error }

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.err, e.kind} }

// classify makes errors of the safetensors and ckpt readers match ErrFormat
// or ErrUnsupported too.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrFormat) || errors.Is(err, ErrUnsupported):
		return err
	case errors.Is(err, safetensors.ErrFormat) || errors.Is(err, ckpt.ErrFormat):
		return &classified{err, ErrFormat}
	case errors.Is(err, safetensors.ErrUnsupported) || errors.Is(err, ckpt.ErrUnsupported):
		return &classified{err, ErrUnsupported}
	}
	return err
}

// Mismatch is a tensor whose shape differs from the expected one.
type Mismatch struct {
	Name      string
	Got, Want []int
}

// RequireError lists every expected tensor that is missing or misshapen. It
// wraps ErrFormat.
type RequireError struct {
	Source     string // the checkpoint path
	Missing    []string
	Mismatched []Mismatch
}

// maxListed bounds how many names an error message lists.
const maxListed = 8

func (e *RequireError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checkpoint: %s does not match the model: %d tensors missing, %d with the wrong shape",
		e.Source, len(e.Missing), len(e.Mismatched))
	for i, n := range e.Missing {
		if i == maxListed {
			fmt.Fprintf(&b, "; ... %d more missing", len(e.Missing)-i)
			break
		}
		fmt.Fprintf(&b, "; missing %s", n)
	}
	for i, m := range e.Mismatched {
		if i == maxListed {
			fmt.Fprintf(&b, "; ... %d more misshapen", len(e.Mismatched)-i)
			break
		}
		fmt.Fprintf(&b, "; %s is %v, want %v", m.Name, m.Got, m.Want)
	}
	b.WriteString(" (the file is incomplete or made for another model: use a complete Stable Diffusion 1.x checkpoint)")
	return b.String()
}

// Unwrap makes the error match ErrFormat.
func (e *RequireError) Unwrap() error { return ErrFormat }
