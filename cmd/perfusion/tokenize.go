package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/pipeline"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
)

func tokenizeCommand() command {
	return command{
		name:    "tokenize",
		summary: "print a prompt's CLIP token ids (77 per line, one line per chunk)",
		run: func(ctx context.Context, args []string) error {
			return oneLine(runTokenize(ctx, args, os.Stdout, os.Stderr))
		},
	}
}

// runTokenize is `perfusion tokenize`: the ids the text encoder gets for a
// prompt, as generate tokenizes it (SD1.5's layout: BOS, up to 75 ids, EOS,
// EOS padding), one line of 77 space-separated ids per chunk. The
// vocabulary is --tokenizer's, else the one found for --model, else the
// built-in CLIP vocabulary.
func runTokenize(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vocab := fs.String("tokenizer", "", "CLIP vocabulary: bpe_simple_vocab_16e6.txt.gz, vocab.json + merges.txt, or a folder (default: the built-in CLIP vocabulary)")
	model := fs.String("model", "", "find the vocabulary for this checkpoint instead (beside it, its diffusers folder, the Hugging Face cache; else the built-in one)")
	emphasis := fs.Bool("emphasis", false, "parse the web UI's emphasis syntax (weights are dropped, BREAK starts a chunk)")
	truncate := fs.Bool("truncate", false, "truncate to one chunk of 75 tokens as SD1.5 does, instead of chunking")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: perfusion tokenize [--tokenizer PATH | --model PATH] [--emphasis] [--truncate] PROMPT...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() == 0:
		return fmt.Errorf("%w: no prompt given", errUsage)
	case *vocab != "" && *model != "":
		return fmt.Errorf("%w: give --tokenizer or --model, not both", errUsage)
	}
	tok, err := pipeline.OpenTokenizer(*model, pipeline.LoadOptions{Tokenizer: *vocab, FallbackBPE: clipVocab()})
	if err != nil {
		return err
	}
	chunks, err := tok.Prompt(strings.Join(fs.Args(), " "), tokenizer.Options{Emphasis: *emphasis, Chunks: !*truncate})
	if err != nil {
		return err
	}
	for _, c := range chunks {
		ids := make([]string, len(c.IDs))
		for i, id := range c.IDs {
			ids[i] = strconv.Itoa(id)
		}
		fmt.Fprintln(stdout, strings.Join(ids, " "))
	}
	return nil
}
