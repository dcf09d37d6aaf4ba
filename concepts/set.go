package concepts

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// Gate limits: β is where the gate opens on the similarity s (≈ 1 at the
// concept's own word), τ how sharply (PERFUSION.md §3.2).
const (
	MinBeta, MaxBeta = 0.0, 1.0
	MinTau, MaxTau   = 0.01, 1.0
)

// CheckGate explains what is wrong with a (β, τ) pair: β from MinBeta to
// MaxBeta, τ from MinTau to MaxTau.
func CheckGate(beta, tau float64) error {
	if math.IsNaN(beta) || beta < MinBeta || beta > MaxBeta {
		return fmt.Errorf("β = %g: want %g to %g (the likeness ↔ prompt balance)", beta, MinBeta, MaxBeta)
	}
	if math.IsNaN(tau) || tau < MinTau || tau > MaxTau {
		return fmt.Errorf("τ = %g: want %g to %g (the gate's temperature)", tau, MinTau, MaxTau)
	}
	return nil
}

// ParseMulti reads "sum" or "exact" ("" is sum).
func ParseMulti(s string) (edit.Multi, error) {
	switch strings.ToLower(s) {
	case "", "sum":
		return edit.Sum, nil
	case "exact":
		return edit.Exact, nil
	}
	return edit.Sum, fmt.Errorf("multi-concept form %q: want sum or exact", s)
}

// ParseLock reads "local" or "global" ("" is local).
func ParseLock(s string) (edit.Lock, error) {
	switch strings.ToLower(s) {
	case "", "local":
		return edit.Local, nil
	case "global":
		return edit.Global, nil
	}
	return edit.Local, fmt.Errorf("key locking %q: want local or global", s)
}

var placeholderRE = regexp.MustCompile(`<([\p{L}\p{N}][\p{L}\p{N}_-]*)>`)

// PromptNames returns the concept names written <name> in the prompts, in
// order of first appearance, lower-cased (the tokenizer's view), each once.
func PromptNames(prompts ...string) []string {
	var out []string
	for _, p := range prompts {
		for _, m := range placeholderRE.FindAllStringSubmatch(p, -1) {
			if n := strings.ToLower(m[1]); !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// Use is one concept of a generation with its gate.
type Use struct {
	Concept   *edit.Concept
	Beta, Tau float64
}

// NewSet returns the edit of a generation: the concepts with their gates
// (each checked with CheckGate), the metric C⁻¹ and the options. The
// concepts are copied, so one loaded concept can serve generations with
// different gates at once. No uses gives an empty set (the base model).
func NewSet(uses []Use, m edit.Metric, opt edit.Options) (*edit.Set, error) {
	s := &edit.Set{Metric: m, Options: edit.Options{Multi: opt.Multi, Lock: opt.Lock}}
	seen := map[string]bool{}
	for _, u := range uses {
		if u.Concept == nil {
			return nil, fmt.Errorf("concepts: nil concept")
		}
		key := strings.ToLower(u.Concept.Word)
		if seen[key] {
			return nil, fmt.Errorf("concepts: concept %s given twice", u.Concept.Word)
		}
		seen[key] = true
		if err := CheckGate(u.Beta, u.Tau); err != nil {
			return nil, fmt.Errorf("concepts: concept %s: %w", u.Concept.Word, err)
		}
		c := *u.Concept
		c.Beta, c.Tau = float32(u.Beta), float32(u.Tau)
		s.Concepts = append(s.Concepts, &c)
	}
	if len(s.Concepts) > 0 && m == nil {
		return nil, fmt.Errorf("concepts: no covariance C for the concepts' gates")
	}
	return s, nil
}

// DefaultCacheDir is where C is cached by default: the user cache folder's
// perfusion/covariance.
func DefaultCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("concepts: no cache folder: %w", err)
	}
	return filepath.Join(base, "perfusion", "covariance"), nil
}

// Covariance returns C of p's text encoder from a caption corpus (nil:
// the shipped one, captions.Default()), read from the cache in cacheDir ("" for no cache)
// or computed (minutes for SD1.5 on a laptop), reporting progress and
// stopping with ctx; then cached. Its Key is what concept files record.
func Covariance(ctx context.Context, p *pipeline.Pipeline, caps []string, cacheDir string, progress func(covariance.Progress)) (*covariance.Covariance, covariance.CacheStatus, error) {
	if caps == nil {
		caps = captions.Default()
	}
	cv, st, err := covariance.ForPipeline(ctx, p, caps, cacheDir, covariance.Options{Progress: progress})
	if err != nil {
		return nil, st, fmt.Errorf("concepts: covariance C: %w", err)
	}
	return cv, st, nil
}
