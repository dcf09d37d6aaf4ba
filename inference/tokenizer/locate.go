package tokenizer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File names a vocabulary can come in.
const (
	BPEFile    = "bpe_simple_vocab_16e6.txt.gz"
	bpeTxtFile = "bpe_simple_vocab_16e6.txt"
	VocabFile  = "vocab.json"
	MergesFile = "merges.txt"
)

// Source says where a vocabulary is: BPE (the path of openai's merges
// file, gzipped or not), Vocab and Merges (a Hugging Face tokenizer
// folder's files), or BPEData (openai's merges file itself, gzipped or
// not, held in memory: a copy built into the program). Load uses the first
// that is set, in that order.
type Source struct {
	BPE           string
	Vocab, Merges string
	// BPEData is a string, not a []byte, so that a Source stays comparable
	// and the data cannot change under it.
	BPEData string
}

// String describes the source for messages.
func (s Source) String() string {
	switch {
	case s.BPE != "":
		return s.BPE
	case s.Vocab == "" && s.Merges == "" && s.BPEData != "":
		return "built-in " + BPEFile
	}
	return s.Vocab + " + " + s.Merges
}

// Load reads the vocabulary that src names.
func Load(src Source) (*Tokenizer, error) {
	if src.BPE != "" {
		f, err := os.Open(src.BPE)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		defer f.Close()
		t, err := fromBPE(f)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", src.BPE, err)
		}
		return t, nil
	}
	if src.Vocab == "" && src.Merges == "" && src.BPEData != "" {
		t, err := fromBPE(strings.NewReader(src.BPEData))
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", src, err)
		}
		return t, nil
	}
	if src.Vocab == "" || src.Merges == "" {
		return nil, fmt.Errorf("tokenizer: empty source: need a BPE file, or vocab.json and merges.txt")
	}
	v, err := os.Open(src.Vocab)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer v.Close()
	m, err := os.Open(src.Merges)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer m.Close()
	t, err := FromVocabMerges(bufio.NewReader(v), bufio.NewReader(m))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", src, err)
	}
	return t, nil
}

// fromBPE reads openai's merges file, gzipped or not.
func fromBPE(r io.Reader) (*Tokenizer, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return FromGzipBPE(br)
	}
	return fromBPEText(br)
}

// NotFoundError is Locate's error: no vocabulary in any place it looked.
type NotFoundError struct {
	Checkpoint string
	Looked     []string // every file or pattern checked, in order
	Partial    []string // vocab.json found without merges.txt, or the reverse
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tokenizer: no CLIP vocabulary found for %q: missing %s, or %s with %s (single-file checkpoints carry none).\nLooked in:\n",
		e.Checkpoint, BPEFile, VocabFile, MergesFile)
	for _, l := range e.Looked {
		fmt.Fprintf(&b, "  - %s\n", l)
	}
	for _, p := range e.Partial {
		fmt.Fprintf(&b, "Found only %s.\n", p)
	}
	fmt.Fprintf(&b, "Fix: put %s (openai/CLIP's) or a tokenizer folder's %s and %s (openai/clip-vit-large-patch14's or an SD1.5 diffusers folder's) beside the checkpoint or in the data folder, or name one directly.",
		BPEFile, VocabFile, MergesFile)
	return b.String()
}

// Locate finds a vocabulary for a checkpoint file or diffusers folder. In
// order it looks:
//  1. beside the checkpoint (in the folder itself for a folder):
//     bpe_simple_vocab_16e6.txt(.gz), vocab.json + merges.txt, tokenizer/;
//  2. in the diffusers folder the checkpoint sits in (a parent holding
//     model_index.json): tokenizer/;
//  3. in the Hugging Face hub cache ($HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE,
//     $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub)
//     under openai/clip-vit-large-patch14 (then the SD1.5 repositories'
//     tokenizer/), snapshot of refs/main first;
//  4. in the app's data folder dataDir (if not empty), as in 1.
//
// When none has it, the error is a *NotFoundError listing every place.
func Locate(checkpointPath, dataDir string) (Source, error) {
	e := &NotFoundError{Checkpoint: checkpointPath}
	dir := checkpointPath
	if st, err := os.Stat(checkpointPath); err != nil || !st.IsDir() {
		dir = filepath.Dir(checkpointPath)
	}
	if src, ok := e.inFolder(dir, true); ok {
		return src, nil
	}
	if parent := filepath.Dir(dir); parent != dir && isFile(filepath.Join(parent, "model_index.json")) {
		if src, ok := e.pair(filepath.Join(parent, "tokenizer")); ok {
			return src, nil
		}
	}
	// hub repositories holding SD1.x's CLIP tokenizer, and its folder in a snapshot
	hfRepos := [...]struct{ dir, sub string }{
		{"models--openai--clip-vit-large-patch14", ""},
		{"models--stable-diffusion-v1-5--stable-diffusion-v1-5", "tokenizer"},
		{"models--runwayml--stable-diffusion-v1-5", "tokenizer"},
	}
	for _, root := range hubRoots() {
		for _, repo := range hfRepos {
			base := filepath.Join(root, repo.dir, "snapshots")
			e.Looked = append(e.Looked, filepath.Join(base, "*", repo.sub, VocabFile)+" + "+MergesFile)
			for _, snap := range snapshots(filepath.Join(root, repo.dir)) {
				d := filepath.Join(base, snap, repo.sub)
				if isFile(filepath.Join(d, VocabFile)) && isFile(filepath.Join(d, MergesFile)) {
					return Source{Vocab: filepath.Join(d, VocabFile), Merges: filepath.Join(d, MergesFile)}, nil
				}
			}
		}
	}
	if dataDir != "" {
		if src, ok := e.inFolder(dataDir, true); ok {
			return src, nil
		}
	}
	return Source{}, e
}

// inFolder checks dir for a BPE file, a vocab/merges pair, and (if sub)
// the same pair in dir/tokenizer.
func (e *NotFoundError) inFolder(dir string, sub bool) (Source, bool) {
	for _, name := range []string{BPEFile, bpeTxtFile} {
		p := filepath.Join(dir, name)
		e.Looked = append(e.Looked, p)
		if isFile(p) {
			return Source{BPE: p}, true
		}
	}
	if src, ok := e.pair(dir); ok {
		return src, true
	}
	if sub {
		return e.pair(filepath.Join(dir, "tokenizer"))
	}
	return Source{}, false
}

// pair checks dir for vocab.json + merges.txt, noting a half pair.
func (e *NotFoundError) pair(dir string) (Source, bool) {
	v, m := filepath.Join(dir, VocabFile), filepath.Join(dir, MergesFile)
	e.Looked = append(e.Looked, v+" + "+MergesFile)
	hasV, hasM := isFile(v), isFile(m)
	switch {
	case hasV && hasM:
		return Source{Vocab: v, Merges: m}, true
	case hasV:
		e.Partial = append(e.Partial, v+" without "+MergesFile)
	case hasM:
		e.Partial = append(e.Partial, m+" without "+VocabFile)
	}
	return Source{}, false
}

// hubRoots lists the Hugging Face hub cache folders, most specific first.
func hubRoots() []string {
	var roots []string
	add := func(p string) {
		if p == "" {
			return
		}
		for _, r := range roots {
			if r == p {
				return
			}
		}
		roots = append(roots, p)
	}
	add(os.Getenv("HF_HUB_CACHE"))
	add(os.Getenv("HUGGINGFACE_HUB_CACHE"))
	if h := os.Getenv("HF_HOME"); h != "" {
		add(filepath.Join(h, "hub"))
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		add(filepath.Join(x, "huggingface", "hub"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		add(filepath.Join(home, ".cache", "huggingface", "hub"))
	}
	return roots
}

// snapshots lists a hub repository's snapshot folders: the one refs/main
// names first, then the rest by name.
func snapshots(repo string) []string {
	entries, err := os.ReadDir(filepath.Join(repo, "snapshots"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if ref, err := os.ReadFile(filepath.Join(repo, "refs", "main")); err == nil {
		main := strings.TrimSpace(string(ref))
		for i, n := range names {
			if n == main {
				names = append([]string{n}, append(names[:i:i], names[i+1:]...)...)
				break
			}
		}
	}
	return names
}

// isFile reports a regular file (following links, as the hub cache uses).
func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
