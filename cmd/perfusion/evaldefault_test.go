package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
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
	for _, bad := range [][]string{{"--model", "m", "extra"}, {"--model", "m", "--seed", "x"}, {"--skip", "text,colour"}, {"--concept-steps", "-1"},
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
