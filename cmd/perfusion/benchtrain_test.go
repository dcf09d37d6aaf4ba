package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/concepts/train"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/pipeline/perf"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

func TestTrainBenchFlags(t *testing.T) {
	_, g, to, err := parseBenchAll([]string{"--train", "--recompute", "off", "--sizes", "256"}, new(bytes.Buffer))
	if err != nil || !to.on || to.recompute != train.RecomputeOff || to.noLimit || g.compare {
		t.Errorf("options %+v, %v", to, err)
	}
	if _, _, to, err := parseBenchAll(nil, new(bytes.Buffer)); err != nil || to.on || to.recompute != train.RecomputeAuto {
		t.Errorf("defaults %+v, %v; want the stages", to, err)
	}
	for _, args := range [][]string{{"--train", "--recompute", "sometimes"}, {"--train", "--gemm"}} {
		if _, _, _, err := parseBenchAll(args, new(bytes.Buffer)); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// The training bench measures a size on the tiny model and writes its row.
func TestTrainBenchSize(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the tiny model")
	}
	p, err := pipeline.Load(context.Background(), golden.Path(t, "tiny_diffusers"), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := p.CLIP.Config.HiddenSize
	inv := make([]float64, d*d)
	for i := range d {
		inv[i*d+i] = 1
	}
	m, err := edit.NewDenseMetric(inv, d)
	if err != nil {
		t.Fatal(err)
	}
	s, err := train.PresetSettings(train.Quick)
	if err != nil {
		t.Fatal(err)
	}
	s.Size, s.Batch, s.Micro, s.Recompute = 32, 1, 1, train.RecomputeOn
	var log bytes.Buffer
	row, err := trainBenchSize(context.Background(), p, m, "toy", s, 2, "", func(f string, a ...any) { log.WriteString(f + "\n") })
	if err != nil {
		t.Fatal(err)
	}
	if row.forward <= 0 || row.sample <= 0 || row.sampleAlloc == 0 || row.fwdAlloc == 0 || !row.recompute {
		t.Errorf("row %+v", row)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 4 {
		t.Errorf("log %q, want 2 forwards and 2 samples", log.String())
	}
	for i, l := range lines { // alternating, a forward first
		if want := []string{"UNet forward", "training sample"}[i%2]; !strings.Contains(l, want) {
			t.Errorf("log line %d %q, want %q", i, l, want)
		}
	}
	var out bytes.Buffer
	if err := writeTrainBench(&out, &perf.Bench{P: p, DType: "F32"}, perf.Options{Reps: 2}, []trainBenchRow{row}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "32 px") || !strings.Contains(out.String(), "sample/forward") {
		t.Errorf("table:\n%s", out.String())
	}
}
