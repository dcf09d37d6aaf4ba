package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/internal/golden"
)

// tokenizerCase is one case of tokenizer_cases.json.
type tokenizerCase struct {
	Name      string `json:"name"`
	Text      string `json:"text"`
	NBPE      int    `json:"n_bpe"`
	IDs77     []int  `json:"ids_77"`
	HFIDs77   []int  `json:"hf_ids_77"`
	HFDiffers bool   `json:"hf_preprocessing_differs"`
}

// want is the SD1.5 (Hugging Face tokenizer) answer.
func (c tokenizerCase) want() []int {
	if c.HFDiffers {
		return c.HFIDs77
	}
	return c.IDs77
}

func joinIDs(ids []int) string { return strings.Trim(fmt.Sprint(ids), "[]") }

func TestTokenizeGoldenCases(t *testing.T) {
	var doc struct {
		Cases []tokenizerCase `json:"cases"`
	}
	golden.JSON(t, "tokenizer_cases.json", &doc)
	vocab := golden.Path(t, "bpe_simple_vocab_16e6.txt.gz")
	checked := 0
	for _, c := range doc.Cases {
		if c.Text == "" || strings.TrimSpace(c.Text) != c.Text || strings.ContainsAny(c.Text, "\n\t") {
			continue // the command joins its arguments with spaces
		}
		var out bytes.Buffer
		// the golden file, then the built-in vocabulary (no flag)
		for _, flags := range [][]string{{"--tokenizer", vocab}, nil} {
			out.Reset()
			if err := runTokenize(context.Background(), append(flags, "--truncate", c.Text), &out, new(bytes.Buffer)); err != nil {
				t.Fatalf("%s %q: %v", c.Name, flags, err)
			}
			if got := strings.TrimSpace(out.String()); got != joinIDs(c.want()) {
				t.Errorf("%s %q: %q\n got %s\nwant %s", c.Name, flags, c.Text, got, joinIDs(c.want()))
			}
		}
		checked++
		if c.NBPE <= 75 {
			continue
		}
		// Without --truncate a long prompt prints one line per chunk, the
		// first starting like the truncated layout.
		out.Reset()
		if err := runTokenize(context.Background(), []string{"--tokenizer", vocab, c.Text}, &out, new(bytes.Buffer)); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) < 2 {
			t.Errorf("%s (%d tokens): %d line(s), want a line per chunk", c.Name, c.NBPE, len(lines))
		}
		for _, l := range lines {
			if n := len(strings.Fields(l)); n != 77 {
				t.Errorf("%s: a line of %d ids", c.Name, n)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no tokenizer case checked")
	}
}

func TestTokenizeFindsModelVocabulary(t *testing.T) {
	var out bytes.Buffer
	if err := runTokenize(context.Background(), []string{"--model", golden.Path(t, "tiny_diffusers"), "a", "photograph"}, &out, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(out.String()); len(f) != 77 || f[0] != "49406" || f[3] != "49407" {
		t.Errorf("ids %v", f)
	}
}

func TestTokenizeUsage(t *testing.T) {
	vocab := golden.Path(t, "bpe_simple_vocab_16e6.txt.gz")
	for _, args := range [][]string{
		{"--tokenizer", vocab},
		{},
		{"--tokenizer", vocab, "--model", "x", "a cat"},
		{"--nope", "a cat"},
	} {
		if err := runTokenize(context.Background(), args, new(bytes.Buffer), new(bytes.Buffer)); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	if err := runTokenize(context.Background(), []string{"--tokenizer", "/nonexistent/vocab.txt.gz", "a"}, new(bytes.Buffer), new(bytes.Buffer)); err == nil || errors.Is(err, errUsage) {
		t.Errorf("missing vocabulary: %v", err)
	}
}

func TestBenchFlags(t *testing.T) {
	opt, err := benchOptions([]string{"--sizes", "256, 520,8", "--steps", "3", "--dtype", "f32"}, new(bytes.Buffer))
	if err != nil || !slices.Equal(opt.Sizes, []int{256, 520, 8}) || opt.Reps != 3 || opt.DType != "F32" {
		t.Errorf("options %+v, %v", opt, err)
	}
	if opt, err := benchOptions(nil, new(bytes.Buffer)); err != nil || opt.DType != "F16" || len(opt.Sizes) != 2 {
		t.Errorf("defaults %+v, %v", opt, err)
	}
	for _, args := range [][]string{{"--sizes", "300"}, {"--sizes", "0"}, {"--sizes", "2056"}, {"--sizes", "a"},
		{"--dtype", "bf16"}, {"--steps", "0"}, {"extra"}} {
		if _, err := benchOptions(args, new(bytes.Buffer)); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// A flag's usage text names its value only where that is meant: Go's flag
// package takes a backquoted word in the text as the value's name.
func TestBenchUsageText(t *testing.T) {
	var usage bytes.Buffer
	if _, err := benchOptions([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, line := range strings.Split(usage.String(), "\n") {
		f := strings.Fields(line)
		if strings.HasPrefix(line, "  -") && (len(f) > 2 || len(f) == 2 && f[1] != "string" && f[1] != "int") {
			t.Errorf("flag %s shows a value name %q:\n%s", f[0], strings.Join(f[1:], " "), usage.String())
		}
	}
	if !strings.Contains(usage.String(), "multiples of 8") {
		t.Errorf("-sizes usage does not say multiples of 8:\n%s", usage.String())
	}
}
