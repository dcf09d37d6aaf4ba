package train

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/perfusion-studio/perfusion/inference/safetensors"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// Checkpoint file format: a safetensors file whose metadata says what it
// is and where the run stands; tensors "w/<key>" (weights), "m/<key>" and
// "v/<key>" (AdamW moments of the phase being trained), all F32.
const (
	stateFormat  = "perfusion-default-model-training"
	stateVersion = "1"
)

// State is everything a run needs to resume.
type State struct {
	Phase       string // PhaseVAE, PhaseUNet or PhaseDone
	Step        int    // steps done in Phase
	Seed        uint64
	ScaleFactor float32 // the latent scale, once the VAE is trained
	Weights     weights.Map
	Opt         *AdamW // optimiser of Phase
}

// Phases of a run.
const (
	PhaseVAE  = "vae"
	PhaseUNet = "unet"
	PhaseDone = "done"
)

// Save writes the state to path atomically (temporary file + rename).
func (s *State) Save(path string) error {
	var entries []safetensors.Entry
	src := map[string][]float32{}
	add := func(name string, data []float32, shape []int) {
		entries = append(entries, safetensors.Entry{Name: name, DType: "F32", Shape: shape})
		src[name] = data
	}
	for _, k := range s.Weights.Names() {
		w := s.Weights[k]
		add("w/"+k, w.Data, w.Shape)
		if m, ok := s.Opt.M[k]; ok {
			add("m/"+k, m, w.Shape)
			add("v/"+k, s.Opt.V[k], w.Shape)
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	meta := map[string]string{
		"format": stateFormat, "version": stateVersion, "phase": s.Phase,
		"step": strconv.Itoa(s.Step), "adam_step": strconv.Itoa(s.Opt.Step),
		"seed": strconv.FormatUint(s.Seed, 10), "scale_factor": strconv.FormatFloat(float64(s.ScaleFactor), 'g', -1, 32),
	}
	err := safetensors.WriteFile(path, entries, meta, func(e safetensors.Entry, dst []byte) error {
		return safetensors.EncodeFloat32(dst, src[e.Name], e.DType)
	})
	if err != nil {
		return fmt.Errorf("train: save checkpoint: %w", err)
	}
	return nil
}

// LoadState reads a checkpoint written by Save.
func LoadState(path string) (*State, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: load checkpoint: %w", err)
	}
	defer f.Close()
	md := f.Metadata
	if md["format"] != stateFormat || md["version"] != stateVersion {
		return nil, fmt.Errorf("train: %s is not a version %s training checkpoint (format %q version %q): delete it to start over",
			path, stateVersion, md["format"], md["version"])
	}
	s := &State{Phase: md["phase"], Weights: weights.Map{}, Opt: NewAdamW()}
	var errs [4]error
	s.Step, errs[0] = strconv.Atoi(md["step"])
	s.Opt.Step, errs[1] = strconv.Atoi(md["adam_step"])
	s.Seed, errs[2] = strconv.ParseUint(md["seed"], 10, 64)
	sf, err3 := strconv.ParseFloat(md["scale_factor"], 32)
	s.ScaleFactor, errs[3] = float32(sf), err3
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("train: %s: bad metadata: %w", path, err)
		}
	}
	for _, name := range f.Names() {
		data, shape, err := f.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("train: %s: %w", path, err)
		}
		switch {
		case len(name) > 2 && name[:2] == "w/":
			s.Weights[name[2:]] = weights.Tensor{Data: data, Shape: shape}
		case len(name) > 2 && name[:2] == "m/":
			s.Opt.M[name[2:]] = data
		case len(name) > 2 && name[:2] == "v/":
			s.Opt.V[name[2:]] = data
		default:
			return nil, fmt.Errorf("train: %s: unexpected tensor %q", path, name)
		}
	}
	return s, nil
}
