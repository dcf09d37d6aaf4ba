package train

import (
	"encoding/json"
	"fmt"
	"image"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
)

// trainingRecord is what a concept file records of its training.
type trainingRecord struct {
	Preset      string   `json:"preset"`
	Size        int      `json:"size"`
	Steps       int      `json:"steps"`
	Batch       int      `json:"batch"`
	LREmbedding float64  `json:"lr_embedding"`
	LRValues    float64  `json:"lr_values"`
	GateBeta    float32  `json:"train_beta"`
	GateTau     float32  `json:"train_tau"`
	Flip        bool     `json:"flip"`
	Templates   []string `json:"templates,omitempty"` // when not the package's Templates
	Seed        uint64   `json:"seed"`
	Photos      int      `json:"photos"`
	LossFirst   float64  `json:"eval_loss_before"`
	LossLast    float64  `json:"eval_loss_after"`
}

// ConceptFile returns the result as a concept file's content, with the
// inference gate defaults, the base model's hash, the key of the C it was
// trained with and a thumbnail of thumb (nil: none).
func (r *Result) ConceptFile(baseModel, covarianceKey string, photos int, thumb image.Image) (*conceptfile.Concept, error) {
	t := r.Concept
	s := t.Settings
	rec, err := json.Marshal(trainingRecord{
		Preset: s.Preset, Size: s.Size, Steps: s.Steps, Batch: s.Batch, LREmbedding: s.LREmbedding, LRValues: s.LRValues,
		GateBeta: s.GateBeta, GateTau: s.GateTau, Flip: s.Flip, Templates: s.Templates, Seed: s.Seed, Photos: photos,
		LossFirst: r.Check.EvalStart, LossLast: r.Check.EvalEnd,
	})
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	c := &conceptfile.Concept{
		Header: conceptfile.Header{
			Name: t.Name, Superclass: t.Superclass, SuperclassToken: t.SuperclassToken,
			Beta: conceptfile.DefaultBeta, Tau: conceptfile.DefaultTau,
			BaseModel: baseModel, Covariance: covarianceKey, Training: rec,
			Created: time.Now().UTC().Format(time.RFC3339), Dim: len(t.Embedding),
		},
		Embedding:   t.Embedding,
		TargetInput: t.TargetInput,
	}
	for _, l := range t.Layers {
		c.Layers = append(c.Layers, conceptfile.Layer{Name: l.Name, OutK: l.OutK, OutV: l.OutV})
	}
	if thumb != nil {
		if c.Thumbnail, err = conceptfile.Thumbnail(thumb); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	return c, nil
}
