package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"image"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/disintegration/imaging"

	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/library"
	"github.com/perfusion-studio/perfusion/concepts/photos"
	"github.com/perfusion-studio/perfusion/concepts/train"
)

// Training presets (see concepts/train).
const (
	PresetQuick = train.Quick // 256 px, a few hundred samples: minutes on a laptop CPU
	PresetPaper = train.Paper // the paper's recipe: 512 px, 400 steps of 16
)

// MaxTrainPhotos is the most photos one concept is trained on.
const MaxTrainPhotos = photos.MaxPhotos

// Folders inside the data folder.
const (
	conceptsDir   = "concepts"   // the concept library
	trainingDir   = "training"   // unfinished runs: request and resume file
	covarianceDir = "covariance" // the text encoder's C, per model
)

// ErrNoDataFolder is the error of training in a studio without a data folder.
var ErrNoDataFolder = errors.New("training needs a data folder to keep its concepts in: set one in Settings")

// ErrTrainingRunning is the error of starting a second run.
var ErrTrainingRunning = errors.New("a concept is already training: wait for it or cancel it")

// TrainPhoto is one photo of a training request.
type TrainPhoto struct {
	Path string `json:"path"`
	// Crop is the square to train on, in the upright photo's pixels; the
	// zero Rectangle is the centred square.
	Crop image.Rectangle `json:"crop"`
}

// TrainRequest asks for a concept to be trained.
type TrainRequest struct {
	Photos []TrainPhoto `json:"photos"`
	Name   string       `json:"name"` // the concept's name, <name> in prompts
	Word   string       `json:"word"` // the superordinate word: one CLIP token
	Preset string       `json:"preset"`
	// Steps, Size and Batch override the preset's when positive.
	Steps int    `json:"steps,omitempty"`
	Size  int    `json:"size,omitempty"`
	Batch int    `json:"batch,omitempty"`
	Seed  uint64 `json:"seed,omitempty"` // 0: 1
}

// Training stages as TrainingEvent.Stage reports them; the others are
// concepts/train's (photos, latents, mask, train, check).
const (
	StageCovariance = "covariance" // the text encoder's C (cached per model)
	StageSave       = "save"       // writing the concept into the library
)

// TrainingEvent is one step of a training run. Events arrive on the
// training goroutine.
type TrainingEvent struct {
	Name        string // the concept
	Stage       string
	Label       string // what is happening, for people
	Step, Total int    // within the stage
	// Losses are the training losses of this session's steps so far (a
	// copy), for a sparkline; a resumed run starts after Resumed steps.
	Losses  []float64
	Resumed int
	ETA     time.Duration // of the stage; 0 when unknown
	Elapsed time.Duration // since the start
	Done    bool          // finished, failed or cancelled
	// Err is why it failed: context.Canceled when cancelled (the resume
	// file is kept), train.ErrNotLearned wrapped with the explanation when
	// the self-check failed.
	Err error
	// Concept is the library name the concept was saved under (Done, no
	// Err); Path is its file.
	Concept, Path string
	// Sample is the self-check's render of the concept ("a photo of a
	// <name>", a few DDIM steps at the training size), on success; nil when
	// it could not be decoded.
	Sample *image.RGBA
	// StepSample, while it trains, is a new render of the concept as it
	// stands (in the event that brings it); SampleEvery is how many steps
	// apart they are drawn (0: not known yet or samples are off).
	StepSample  *TrainingSample
	SampleEvery int
}

// Fraction is the run's progress within its stage, 0 to 1.
func (e TrainingEvent) Fraction() float64 {
	if e.Total <= 0 {
		return 0
	}
	return float64(e.Step) / float64(e.Total)
}

// ErrNotLearned is the error of a run whose concept failed its self-check
// (the message explains what to try); the concept is not saved.
var ErrNotLearned = train.ErrNotLearned

// IsNotLearned reports whether err is a failed self-check.
func IsNotLearned(err error) bool { return errors.Is(err, ErrNotLearned) }

// Training trains concepts in the background, one at a time, on the
// studio's current model. Its methods are safe for concurrent use.
//
// A run does not take the job runner's worker for its whole length: it
// holds the runner one optimizer step at a time. Between steps it gives the
// worker back and queues again at Training priority, so previews and
// renders queued meanwhile run first, and no preview ever runs at the same
// time as a training step.
type Training struct {
	studio   *Studio
	dataDir  string
	captions func() []string // the covariance corpus (tests use a small one)
	// sampleBudget is the share of a run's time its samples may take
	// (DefaultSampleBudget; ≤ 0: no samples while it trains).
	sampleBudget float64
	// samplePause, when set, is called at each pause of a sample (tests).
	samplePause func()

	mu     sync.Mutex
	hooks  listeners[TrainingEvent]
	name   string             // the run in progress, "" when none
	cancel context.CancelFunc // of that run
	done   chan struct{}      // closed when it ends
}

// Training returns the studio's training service.
func (s *Studio) Training() *Training {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.training == nil {
		t := &Training{studio: s, dataDir: s.Models.dataDir, captions: captions.Default, sampleBudget: DefaultSampleBudget}
		// A saved concept is a library change: the library panel refreshes.
		t.OnEvent(func(e TrainingEvent) {
			if e.Done && e.Err == nil && e.Concept != "" && s.Concepts != nil {
				s.Concepts.changed()
			}
		})
		s.training = t
	}
	return s.training
}

// stopTraining cancels the run in progress, if any, and waits for it to
// save its resume file.
func (s *Studio) stopTraining() {
	s.mu.Lock()
	t := s.training
	s.mu.Unlock()
	if t != nil {
		t.Cancel()
		t.Wait()
	}
}

// OnEvent registers fn to receive every training event, on the training
// goroutine.
func (t *Training) OnEvent(fn func(TrainingEvent)) {
	t.hooks.add(fn)
}

func (t *Training) emit(e TrainingEvent) { t.hooks.emit(e) }

// Running returns the name of the concept in training, or "".
func (t *Training) Running() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.name
}

// Cancel stops the run in progress; its resume file is kept, so starting
// the same request again continues it.
func (t *Training) Cancel() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		t.cancel()
	}
}

// Wait blocks until no run is in progress.
func (t *Training) Wait() {
	t.mu.Lock()
	done := t.done
	t.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Library opens the concept library in the data folder.
func (t *Training) Library() (*library.Library, error) {
	if t.dataDir == "" {
		return nil, ErrNoDataFolder
	}
	return library.Open(filepath.Join(t.dataDir, conceptsDir))
}

// CheckName explains what is wrong with name for a new concept: not a
// valid name, or taken in the library (with a free one to use instead).
func (t *Training) CheckName(name string) error {
	if err := conceptfile.ValidName(name); err != nil {
		return err
	}
	lib, err := t.Library()
	if err != nil {
		return err
	}
	if p, err := lib.Path(name); err == nil {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("a concept called %s exists; try %s", name, lib.FreeName(name))
		}
	}
	return nil
}

// CheckWord explains what is wrong with the superordinate word for the
// current model's tokenizer, with single-token suggestions when it is not
// one token.
func (t *Training) CheckWord(word string) (suggestions []string, err error) {
	p, _ := t.studio.Models.Current()
	if p == nil {
		return nil, ErrNoModel
	}
	if _, err := train.SuperclassToken(p.Tokenizer, word); err != nil {
		return train.Suggest(p.Tokenizer, word), errors.New(strings.TrimPrefix(err.Error(), "train: "))
	}
	return nil, nil
}

// settings applies the request's overrides to its preset, sized for a
// model of native image side nativeSize (train.PresetFor) whose sizes are
// multiples of mult.
func (r TrainRequest) settings(mult, nativeSize int) (train.Settings, error) {
	s, err := train.PresetFor(r.Preset, nativeSize)
	if err != nil {
		return s, err
	}
	if r.Steps < 0 || r.Size < 0 || r.Batch < 0 {
		return s, fmt.Errorf("steps, size and batch must not be negative")
	}
	if r.Steps > 0 {
		s.Steps = r.Steps
	}
	if r.Size > 0 {
		s.Size = r.Size
	}
	if r.Batch > 0 {
		s.Batch = r.Batch
		s.Micro = min(s.Micro, s.Batch)
		for s.Batch%s.Micro != 0 {
			s.Micro--
		}
	}
	if r.Seed != 0 {
		s.Seed = r.Seed
	}
	if err := s.Check(mult); err != nil {
		return s, errors.New(strings.TrimPrefix(err.Error(), "train: "))
	}
	return s, nil
}

// checkPhotos checks the count and that every photo is a readable image.
func checkPhotos(ps []TrainPhoto) error {
	switch {
	case len(ps) == 0:
		return photos.ErrNoPhotos
	case len(ps) > MaxTrainPhotos:
		return fmt.Errorf("%d photos: at most %d (a few varied ones, 4 to 8, work best)", len(ps), MaxTrainPhotos)
	}
	for _, p := range ps {
		pv, err := LoadPhoto(p.Path, 1)
		if err != nil {
			return err
		}
		if p.Crop != (image.Rectangle{}) && (p.Crop.Empty() || !p.Crop.In(image.Rectangle{Max: pv.Size})) {
			return fmt.Errorf("%s: the crop %v is not inside the %dx%d photo", filepath.Base(p.Path), p.Crop, pv.Size.X, pv.Size.Y)
		}
	}
	return nil
}

// Validate explains what is wrong with the request for the current model,
// checking everything a run would refuse before it starts.
func (t *Training) Validate(r TrainRequest) error {
	p, info := t.studio.Models.Current()
	if p == nil {
		return ErrNoModel
	}
	if err := checkPhotos(r.Photos); err != nil {
		return err
	}
	if err := t.CheckName(r.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if _, err := t.CheckWord(r.Word); err != nil {
		return fmt.Errorf("superordinate word: %w", err)
	}
	if _, err := r.settings(info.SizeMultiple, p.NativeSize()); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	return nil
}

// Start validates r and starts training it in the background on the
// current model. Progress, the result and failures arrive as events; the
// returned channel is closed when the run has ended. A request whose run
// was cancelled or cut short by a crash continues from its resume file.
func (t *Training) Start(r TrainRequest) (<-chan struct{}, error) {
	if t.dataDir == "" {
		return nil, ErrNoDataFolder
	}
	if err := t.Validate(r); err != nil {
		return nil, err
	}
	p, info := t.studio.Models.Current()
	s, _ := r.settings(info.SizeMultiple, p.NativeSize())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.mu.Lock()
	if t.name != "" {
		t.mu.Unlock()
		cancel()
		return nil, ErrTrainingRunning
	}
	t.name, t.cancel, t.done = r.Name, cancel, done
	t.mu.Unlock()
	if err := t.saveRequest(r); err != nil {
		t.finish(done)
		cancel()
		return nil, err
	}
	go func() {
		defer t.finish(done)
		defer cancel()
		t.run(ctx, p, info, r, s)
	}()
	return done, nil
}

func (t *Training) finish(done chan struct{}) {
	t.mu.Lock()
	t.name, t.cancel, t.done = "", nil, nil
	t.mu.Unlock()
	close(done)
}

// requestPath and resumePath are where an unfinished run's request and
// resume file live.
func (t *Training) requestPath(name string) string {
	return filepath.Join(t.dataDir, trainingDir, name+".json")
}

func (t *Training) resumePath(name string) string {
	return filepath.Join(t.dataDir, trainingDir, name+".resume")
}

// saveRequest keeps r so that an interrupted run can be offered again.
func (t *Training) saveRequest(r TrainRequest) error {
	if err := os.MkdirAll(filepath.Join(t.dataDir, trainingDir), 0o755); err != nil {
		return fmt.Errorf("training folder: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(t.requestPath(r.Name), data); err != nil {
		return fmt.Errorf("training folder: %w", err)
	}
	return nil
}

// Unfinished returns the requests of runs that were cancelled or cut short
// (by name); Start continues one from where it stopped.
func (t *Training) Unfinished() ([]TrainRequest, error) {
	if t.dataDir == "" {
		return nil, nil
	}
	ms, err := filepath.Glob(filepath.Join(t.dataDir, trainingDir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []TrainRequest
	for _, m := range ms {
		data, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var r TrainRequest
		if json.Unmarshal(data, &r) == nil && r.Name != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// Discard forgets the unfinished run of the concept name.
func (t *Training) Discard(name string) error {
	if err := conceptfile.ValidName(name); err != nil {
		return err
	}
	var errs []error
	for _, p := range []string{t.resumePath(name), t.requestPath(name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PhotoPreview is a photo as the training sheet shows it.
type PhotoPreview struct {
	Path  string
	Size  image.Point     // the upright photo's pixels
	Thumb *image.NRGBA    // the photo fitted into the requested side
	Crop  image.Rectangle // the default crop: the centred square
}

// LoadPhoto decodes the photo at path (refusing non-images and images too
// large to decode safely) and returns its size and a thumbnail at most
// thumbSide pixels a side. It takes as long as a decode: call it off the
// UI goroutine.
func LoadPhoto(path string, thumbSide int) (PhotoPreview, error) {
	img, err := photos.DecodeFile(path, 0)
	if err != nil {
		return PhotoPreview{}, fmt.Errorf("%s: %w", filepath.Base(path), trimPrefix(err, "photos: "+path+": ", "photos: "))
	}
	b := img.Bounds()
	size := image.Pt(b.Dx(), b.Dy())
	return PhotoPreview{Path: path, Size: size, Thumb: imaging.Fit(img, thumbSide, thumbSide, imaging.Box), Crop: CenterSquare(size)}, nil
}

// CenterSquare is the largest centred square of an image of the given size.
func CenterSquare(size image.Point) image.Rectangle {
	side := min(size.X, size.Y)
	x0, y0 := (size.X-side)/2, (size.Y-side)/2
	return image.Rect(x0, y0, x0+side, y0+side)
}

// trimPrefix returns err with the first matching prefix cut from its text.
func trimPrefix(err error, prefixes ...string) error {
	msg := err.Error()
	for _, p := range prefixes {
		if m, ok := strings.CutPrefix(msg, p); ok {
			return errors.New(m)
		}
	}
	return err
}
