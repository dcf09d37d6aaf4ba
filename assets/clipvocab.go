package assets

import _ "embed"

// clipVocab is clipvocab/bpe_simple_vocab_16e6.txt.gz, written by
// ./internal/mkclipvocab; a string, so it cannot be changed.
//
//go:embed clipvocab/bpe_simple_vocab_16e6.txt.gz
var clipVocab string

// clipVocabLicense is clipvocab/LICENSE.txt.
//
//go:embed clipvocab/LICENSE.txt
var clipVocabLicense string

// CLIPVocab returns openai/CLIP's vocabulary, bpe_simple_vocab_16e6.txt.gz
// (gzipped, 1.3 MB; the text is byte for byte CLIP's), the one every SD 1.x
// text encoder was trained with: what a single-file checkpoint, which
// carries none, is tokenized with. Each call returns a new copy.
func CLIPVocab() []byte { return []byte(clipVocab) }

// CLIPVocabLicense is the vocabulary's licence (MIT, Copyright (c) 2021
// OpenAI), to show with the program's other notices.
func CLIPVocabLicense() string { return clipVocabLicense }
