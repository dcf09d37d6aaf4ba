package evaldefault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/perfusion-studio/perfusion/assets/internal/emoji"
	"github.com/perfusion-studio/perfusion/inference/ops"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
)

// cacheMagic starts a cached classifier file; a new layout changes it.
const cacheMagic = "PFEVALCLS1\n"

// classifierKey hashes what a trained classifier depends on: this file
// format and network, the training options and the data (class names,
// every training glyph's pixels and label).
func classifierKey(set *emoji.Set, o ClassifierOptions) string {
	o = o.withDefaults()
	h := sha256.New()
	fmt.Fprintf(h, "%s%v|%d|%d|%d|%g|%d|%d|%d\n", cacheMagic, convSpec, FeatureWidth, o.Steps, o.Batch, o.LR, o.Seed, o.Every, set.Size)
	classes, items := trainingItems(set, o.Every)
	for _, c := range classes {
		fmt.Fprintf(h, "%s\n", c)
	}
	for _, it := range items {
		fmt.Fprintf(h, "%d %s\n", it.class, it.item.Emoji)
		h.Write(it.item.Glyph.Pix)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// cacheHeader is the JSON line after the magic.
type cacheHeader struct {
	Key     string   `json:"key"`
	Classes []string `json:"classes"`
	Values  int      `json:"values"`
}

// saveClassifier writes c atomically: magic, a JSON header line, then
// every weight as little-endian float32 in layer order.
func saveClassifier(path, key string, c *Classifier) error {
	var vals []float32
	for _, l := range c.layers() {
		vals = append(append(vals, l.w.Data()...), l.b.Data()...)
	}
	hdr, err := json.Marshal(cacheHeader{Key: key, Classes: c.Classes, Values: len(vals)})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(cacheMagic)
	buf.Write(hdr)
	buf.WriteByte('\n')
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	buf.Write(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("evaldefault: classifier cache: %w", err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// errStale says a cache file belongs to other data or settings.
var errStale = errors.New("evaldefault: cached classifier is for other data")

// loadClassifier reads a classifier saved under key.
func loadClassifier(path, key string) (*Classifier, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(raw, []byte(cacheMagic))
	if !ok {
		return nil, fmt.Errorf("evaldefault: %s is not a cached classifier of this version (delete it)", path)
	}
	line, body, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("evaldefault: %s: no header", path)
	}
	var h cacheHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, fmt.Errorf("evaldefault: %s: header: %w", path, err)
	}
	if h.Key != key {
		return nil, errStale
	}
	c, err := newClassifier(h.Classes, 0)
	if err != nil {
		return nil, err
	}
	want := 0
	for _, l := range c.layers() {
		want += l.w.Size() + l.b.Size()
	}
	if h.Values != want || len(body) != 4*want {
		return nil, fmt.Errorf("evaldefault: %s: %d values in %d bytes, want %d", path, h.Values, len(body), want)
	}
	i := 0
	for _, l := range c.layers() {
		for _, t := range [][]float32{l.w.Data(), l.b.Data()} {
			for j := range t {
				t[j] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
				i++
			}
		}
	}
	return c, nil
}

// CachedClassifier returns the classifier for set and o from dir when it
// holds one trained on the same data and settings, otherwise trains it
// (TrainClassifier) and saves it there; dir "" keeps no file. cached
// reports a hit.
func CachedClassifier(ctx context.Context, e *ops.Engine, set *emoji.Set, o ClassifierOptions, dir string, progress func(step, total int, loss float64)) (c *Classifier, cached bool, err error) {
	key := classifierKey(set, o)
	path := ""
	if dir != "" {
		path = filepath.Join(dir, "classifier-"+key[:16]+".bin")
		if c, err := loadClassifier(path, key); err == nil {
			return c, true, nil
		}
	}
	c, err = TrainClassifier(ctx, e, set, o, progress)
	if err != nil {
		return nil, false, err
	}
	if path != "" {
		if err := saveClassifier(path, key, c); err != nil {
			return nil, false, err
		}
	}
	return c, false, nil
}
