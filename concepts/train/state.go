package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"io/fs"
	"os"
	"slices"

	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// stateMagic and stateVersion head a resume file.
const (
	stateMagic   = "perfusion-train-resume"
	stateVersion = 1
)

// state is what a run has learned so far: everything a resume needs.
type state struct {
	Magic   string `json:"magic"`
	Version int    `json:"version"`
	// Job identifies the run (model, photos, word, settings): a resume
	// file of another run is not used.
	Job       string      `json:"job"`
	Step      int         `json:"step"`       // optimizer steps done
	Embedding []float32   `json:"embedding"`  // [D]
	Input     []float32   `json:"input"`      // i* [D]
	OutK      [][]float32 `json:"out_k"`      // per layer [O]
	OutV      [][]float32 `json:"out_v"`      // per layer [O]
	Adam      adamState   `json:"adam"`       // optimizer moments
	Losses    []float64   `json:"losses"`     // per step
	EvalStart float64     `json:"eval_start"` // the evaluation loss before training
}

// snapshot returns a deep copy of the learned values (not the optimizer
// state, which only changes once a step has fully succeeded).
func (s *state) snapshot() *state {
	c := *s
	c.Embedding = slices.Clone(s.Embedding)
	c.Input = slices.Clone(s.Input)
	c.OutV = make([][]float32, len(s.OutV))
	for i := range s.OutV {
		c.OutV[i] = slices.Clone(s.OutV[i])
	}
	c.Losses = slices.Clone(s.Losses)
	return &c
}

// jobKey identifies a run for its resume file.
func (tr *trainer) jobKey() string {
	h := sha256.New()
	s := tr.s
	s.CheckpointEvery = 0 // may change between tries
	s.Steps = 0           // more steps continue a finished or refused run
	s.Recompute = 0       // the same gradients, to float rounding
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%+v\x00", tr.p.Path, tr.job.Class, tr.classID, s)
	for i, p := range tr.job.Photos {
		st, err := os.Stat(p.Path)
		var size int64
		var mod string
		if err == nil {
			size, mod = st.Size(), st.ModTime().UTC().String()
		}
		masked := tr.job.Masks != nil && tr.job.Masks[i] != nil
		fmt.Fprintf(h, "%s\x00%v\x00%d\x00%s\x00%v\x00", p.Path, p.Crop, size, mod, masked)
	}
	for _, l := range tr.layers {
		fmt.Fprintf(h, "%s\x00%d\x00", l.Name, l.ToV.Dim(0))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// save writes the resume file atomically (temp file, sync, rename).
func (tr *trainer) save() error {
	if tr.job.Resume == "" {
		return nil
	}
	data, err := json.Marshal(tr.st)
	if err != nil {
		return fmt.Errorf("train: resume file: %w", err)
	}
	if err := atomicfile.WriteFile(tr.job.Resume, data); err != nil {
		return fmt.Errorf("train: resume file: %w", err)
	}
	return nil
}

// readState reads a resume file; ok is false when there is none.
func readState(path string) (st *state, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	st = new(state)
	if err := json.Unmarshal(data, st); err != nil {
		return nil, false, fmt.Errorf("%s is not a resume file (%v); delete it to start afresh", path, err)
	}
	if st.Magic != stateMagic || st.Version != stateVersion {
		return nil, false, fmt.Errorf("%s is not a version %d resume file; delete it to start afresh", path, stateVersion)
	}
	return st, true, nil
}

// restoreOrInit continues from the resume file when it belongs to this
// run, else initialises the state (spec §6.3): the embedding from the
// superordinate word's, and i*, o*_K and o*_V from the superordinate
// word's encodings in the first batch's prompts.
func (tr *trainer) restoreOrInit(ctx context.Context) error {
	key := tr.jobKey()
	sizes := []int{tr.d}
	for _, l := range tr.layers {
		sizes = append(sizes, l.ToV.Dim(0))
	}
	tr.opt = newAdamW(tr.s, sizes)
	if tr.job.Resume != "" {
		st, ok, err := readState(tr.job.Resume)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if ok && st.Job == key {
			if err := tr.checkState(st); err != nil {
				return fmt.Errorf("train: resume file %s: %w; delete it to start afresh", tr.job.Resume, err)
			}
			if err := tr.opt.load(st.Adam); err != nil {
				return fmt.Errorf("train: resume file %s: %w", tr.job.Resume, err)
			}
			tr.st = st
			return nil
		}
	}
	if err := tr.initState(key); err != nil {
		return err
	}
	var err error
	if tr.st.EvalStart, err = tr.evalLoss(ctx); err != nil {
		return err
	}
	return nil
}

// initState starts a run's state (spec §6.3): the embedding from the
// superordinate word's, and i*, o*_K and o*_V from the superordinate
// word's encodings in the first pass's prompts.
func (tr *trainer) initState(key string) error {
	st := &state{Magic: stateMagic, Version: stateVersion, Job: key}
	table := tr.p.CLIP.TokenEmbedding().Data() // [V, D]
	st.Embedding = slices.Clone(table[tr.classID*tr.d : (tr.classID+1)*tr.d])

	// ē_super: the superordinate word's encodings in the first pass's prompts.
	_, _, _, _, ids, pos, err := tr.batch(tr.draw(0, 0, tr.s.Micro), tr.classID)
	if err != nil {
		return err
	}
	enc, err := encodeText(tr.p.CLIP, ids, tr.s.Micro, tensor.Tensor{})
	if err != nil {
		return fmt.Errorf("train: text encoder: %w", err)
	}
	sup := meanAt(enc.Data(), pos, enc.Dim(1), tr.d)
	st.Input = make([]float32, tr.d)
	for j, v := range sup {
		st.Input[j] = float32(v)
	}
	targets, err := edit.InitTargets(tr.layers, st.Input)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	for _, l := range tr.layers {
		st.OutK = append(st.OutK, slices.Clone(targets[l.Name].K.Data()))
		st.OutV = append(st.OutV, slices.Clone(targets[l.Name].V.Data()))
	}
	st.Adam = tr.opt.export()
	tr.st = st
	return nil
}

// checkState checks a resume file's sizes against the model.
func (tr *trainer) checkState(st *state) error {
	if len(st.Embedding) != tr.d || len(st.Input) != tr.d || len(st.OutK) != len(tr.layers) || len(st.OutV) != len(tr.layers) {
		return fmt.Errorf("sizes do not match the model")
	}
	for i, l := range tr.layers {
		if len(st.OutK[i]) != l.ToK.Dim(0) || len(st.OutV[i]) != l.ToV.Dim(0) {
			return fmt.Errorf("layer %s sizes do not match the model", l.Name)
		}
	}
	if st.Step < 0 || st.Step > tr.s.Steps || len(st.Losses) != st.Step {
		return fmt.Errorf("step %d of %d with %d losses", st.Step, tr.s.Steps, len(st.Losses))
	}
	return nil
}
