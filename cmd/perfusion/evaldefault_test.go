package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/assets/evaldefault"
)

func TestEvalDefaultFlags(t *testing.T) {
	var stderr bytes.Buffer
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	g, err := parseEvalFlags([]string{"--model", "m", "--quick"}, &stderr)
	if err != nil || !g.quick || g.model != "m" || g.seed != 1 || !strings.HasSuffix(g.work, filepath.Join("perfusion", "eval-default")) ||
		g.cfg != evaldefault.DefaultCFG || g.steps != evaldefault.DefaultSteps {
		t.Errorf("flags %+v, %v", g, err)
	}
	if g, err := parseEvalFlags([]string{"--cfg", "12", "--steps", "30"}, &stderr); err != nil || g.cfg != 12 || g.steps != 30 {
		t.Errorf("--cfg 12 --steps 30: %+v, %v", g, err)
	}
	if g, err := parseEvalFlags(nil, &stderr); err != nil || g.model != "" {
		t.Errorf("no flags: %+v, %v; want the default model (empty --model)", g, err)
	}
	if g, err := parseEvalFlags([]string{"--skip", "text, personal"}, &stderr); err != nil || !g.skip["text"] || !g.skip["personal"] || g.skip["background"] {
		t.Errorf("--skip text, personal: %+v, %v", g.skip, err)
	}
	if g, err := parseEvalFlags([]string{"--concepts", " dog face, palm  tree,dog face,", "--samples", "8", "--views", "5", "--centred-views"}, &stderr); err != nil ||
		!slices.Equal(g.concepts, []string{"dog face", "palm tree"}) || g.samples != 8 || g.views != 5 || !g.centredViews {
		t.Errorf("--concepts, --samples, --views, --centred-views: %+v, %v", g, err)
	}
	if g, err := parseEvalFlags([]string{"--concepts", "tuning"}, &stderr); err != nil || len(g.concepts) != 21 ||
		slices.Contains(g.concepts, "cat face") || !slices.Contains(g.concepts, "dog face") {
		t.Errorf("--concepts tuning: %v, %v; want the 21 held-out emoji outside the evaluation set", g.concepts, err)
	}
	if g, err := parseEvalFlags(nil, &stderr); err != nil || g.concepts != nil || g.samples != 0 || g.views != 0 || g.centredViews {
		t.Errorf("no flags: concepts %v, samples %d, views %d, centred views %v, %v; want the defaults", g.concepts, g.samples, g.views, g.centredViews, err)
	}
	for _, bad := range [][]string{{"--concepts", "dog face,unicorn"}, {"--samples", "-1"}, {"--views", "2"}, {"--views", "6"}, {"--model", "m", "extra"}, {"--model", "m", "--seed", "x"}, {"--skip", "text,colour"}, {"--concept-steps", "-1"},
		{"--cfg", "0.5"}, {"--cfg", "31"}, {"--steps", "0"}, {"--steps", "151"}} {
		if _, err := parseEvalFlags(bad, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
	var out bytes.Buffer
	err = runEvalDefault(context.Background(), []string{"--model", filepath.Join(t.TempDir(), "none"), "--work", t.TempDir()}, &out, &stderr)
	if err == nil || errors.Is(err, errUsage) || out.Len() != 0 {
		t.Errorf("missing model: %v, output %q", err, out.String())
	}
}
