package assets

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tokenizer"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// clipVocabSHA256 is the SHA-256 of openai/CLIP's bpe_simple_vocab_16e6.txt
// (decompressed), as mkclipvocab checks it.
const clipVocabSHA256 = "67603cfda2e032ad77b5f8808af37789d590db664b26df8705d2bf8b3c553fc8"

func gunzip(t *testing.T, gz []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCLIPVocabIsCLIPs(t *testing.T) {
	text := gunzip(t, CLIPVocab())
	sum := sha256.Sum256(text)
	if got := hex.EncodeToString(sum[:]); got != clipVocabSHA256 {
		t.Fatalf("the embedded vocabulary's text has SHA-256 %s, want %s", got, clipVocabSHA256)
	}
	if !bytes.HasPrefix(text, []byte("\"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\n")) {
		t.Errorf("the text starts %.50q", text)
	}
	// The golden folder holds the file from openai/CLIP itself.
	gz, err := os.ReadFile(golden.Path(t, tokenizer.BPEFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := gunzip(t, gz); !bytes.Equal(text, want) {
		t.Fatalf("the embedded vocabulary (%d bytes of text) differs from the golden %s (%d bytes)", len(text), tokenizer.BPEFile, len(want))
	}
}

func TestCLIPVocabIsACopy(t *testing.T) {
	a := CLIPVocab()
	a[0] ^= 0xff
	if b := CLIPVocab(); b[0] == a[0] {
		t.Fatal("changing CLIPVocab's result changed the next call's")
	}
}

func TestCLIPVocabLicense(t *testing.T) {
	l := CLIPVocabLicense()
	for _, want := range []string{"MIT License", "Copyright (c) 2021 OpenAI", "bpe_simple_vocab_16e6.txt.gz",
		"The above copyright notice and this permission notice shall be included"} {
		if !strings.Contains(l, want) {
			t.Errorf("the licence lacks %q", want)
		}
	}
}

// goldenTokenizerCases is the part of tokenizer_cases.json checked here.
type goldenTokenizerCases struct {
	Cases []struct {
		Name      string `json:"name"`
		Text      string `json:"text"`
		BPEIDs    []int  `json:"bpe_ids"`
		IDs77     []int  `json:"ids_77"`
		HFDiffers bool   `json:"hf_preprocessing_differs"`
		HFBPEIDs  []int  `json:"hf_bpe_ids"`
		HFIDs77   []int  `json:"hf_ids_77"`
	} `json:"cases"`
}

// The embedded vocabulary, loaded from memory, tokenizes every golden case
// as openai/CLIP does, and as Hugging Face's CLIPTokenizer does with
// SkipHTMLUnescape.
func TestCLIPVocabGoldenCases(t *testing.T) {
	var doc goldenTokenizerCases
	golden.JSON(t, "tokenizer_cases.json", &doc)
	if len(doc.Cases) == 0 {
		t.Fatal("tokenizer_cases.json has no cases")
	}
	tok, err := tokenizer.Load(tokenizer.Source{BPEData: string(CLIPVocab())})
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 49408 {
		t.Errorf("VocabSize = %d, want CLIP's 49408", tok.VocabSize())
	}
	hf, err := tokenizer.Load(tokenizer.Source{BPEData: string(CLIPVocab())})
	if err != nil {
		t.Fatal(err)
	}
	hf.SkipHTMLUnescape = true
	for _, c := range doc.Cases {
		if got := tok.Encode(c.Text); !slices.Equal(got, c.BPEIDs) {
			t.Errorf("%s: Encode(%q) = %v, want %v", c.Name, c.Text, got, c.BPEIDs)
		}
		if got := tok.IDs77(c.Text); !slices.Equal(got, c.IDs77) {
			t.Errorf("%s: IDs77 = %v, want %v", c.Name, got, c.IDs77)
		}
		wantBPE, want77 := c.BPEIDs, c.IDs77
		if c.HFDiffers {
			wantBPE, want77 = c.HFBPEIDs, c.HFIDs77
		}
		if got := hf.Encode(c.Text); !slices.Equal(got, wantBPE) {
			t.Errorf("%s: HF Encode(%q) = %v, want %v", c.Name, c.Text, got, wantBPE)
		}
		if got := hf.IDs77(c.Text); !slices.Equal(got, want77) {
			t.Errorf("%s: HF IDs77 = %v, want %v", c.Name, got, want77)
		}
	}
}
