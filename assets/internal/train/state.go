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
// "v/<key>" (AdamW moments of the phase being trained), "e/<key>" (the
// moving average of the UNet phase's weights), all F32.
const (
	stateFormat  = "perfusion-default-model-training"
	stateVersion = "2"
)

// State is everything a run needs to resume.
type State struct {
	Phase       string // PhaseVAE, PhaseUNet or PhaseDone
	Step        int    // steps done in Phase
	Seed        uint64
	ScaleFactor float32 // the latent scale, once the VAE is trained
	// Images is the data's Len() × Backgrounds() the run started on (0 in
	// checkpoints written before it was recorded: not checked).
	Images  int
	Weights weights.Map
	Opt     *AdamW // optimiser of Phase
	// EMA is the exponential moving average of the UNet phase's trainable
	// weights (Polyak averaging, as diffusion models are usually sampled
	// from); the phase ends by copying it into Weights.
	EMA     map[string][]float32
	EMASeen int // updates averaged into EMA

	// PlainSteps and PlainBackgrounds are the Options the run started
	// with (0 in checkpoints written before they were recorded, which
	// is what those runs used).
	PlainSteps, PlainBackgrounds int
}

// UpdateEMA folds the parameters' current values into the moving average
// with decay min(decay, (1+n)/(10+n)) after n updates, so that the early,
// random weights fade quickly.
func (s *State) UpdateEMA(params []Param, decay float64) {
	if s.EMA == nil {
		s.EMA = map[string][]float32{}
	}
	d := float32(min(decay, float64(1+s.EMASeen)/float64(10+s.EMASeen)))
	avgs := make([][]float32, len(params))
	for i, p := range params {
		avg, ok := s.EMA[p.Name]
		if !ok {
			s.EMA[p.Name] = append([]float32(nil), p.T.Data()...)
			continue
		}
		avgs[i] = avg
	}
	eachParam(len(params), func(i int) {
		avg := avgs[i]
		if avg == nil {
			return
		}
		for j, v := range params[i].T.Data() {
			avg[j] = d*avg[j] + (1-d)*v
		}
	})
	s.EMASeen++
}

// UseEMA replaces the averaged weights by their average and drops it.
func (s *State) UseEMA() {
	for k, avg := range s.EMA {
		if w, ok := s.Weights[k]; ok {
			copy(w.Data, avg)
		}
	}
	s.EMA, s.EMASeen = nil, 0
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
		if e, ok := s.EMA[k]; ok {
			add("e/"+k, e, w.Shape)
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	meta := map[string]string{
		"format": stateFormat, "version": stateVersion, "phase": s.Phase,
		"step": strconv.Itoa(s.Step), "adam_step": strconv.Itoa(s.Opt.Step), "ema_seen": strconv.Itoa(s.EMASeen),
		"seed": strconv.FormatUint(s.Seed, 10), "scale_factor": strconv.FormatFloat(float64(s.ScaleFactor), 'g', -1, 32),
		"images": strconv.Itoa(s.Images), "plain_steps": strconv.Itoa(s.PlainSteps), "plain_backgrounds": strconv.Itoa(s.PlainBackgrounds),
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
	var errs [8]error
	s.Step, errs[0] = strconv.Atoi(md["step"])
	s.Opt.Step, errs[1] = strconv.Atoi(md["adam_step"])
	s.Seed, errs[2] = strconv.ParseUint(md["seed"], 10, 64)
	sf, err3 := strconv.ParseFloat(md["scale_factor"], 32)
	s.ScaleFactor, errs[3] = float32(sf), err3
	s.EMASeen, errs[4] = strconv.Atoi(md["ema_seen"])
	if v, ok := md["images"]; ok {
		s.Images, errs[5] = strconv.Atoi(v)
	}
	if v, ok := md["plain_steps"]; ok {
		s.PlainSteps, errs[6] = strconv.Atoi(v)
	}
	if v, ok := md["plain_backgrounds"]; ok {
		s.PlainBackgrounds, errs[7] = strconv.Atoi(v)
	}
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
		case len(name) > 2 && name[:2] == "e/":
			if s.EMA == nil {
				s.EMA = map[string][]float32{}
			}
			s.EMA[name[2:]] = data
		default:
			return nil, fmt.Errorf("train: %s: unexpected tensor %q", path, name)
		}
	}
	return s, nil
}
