package clip

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/perfusion-studio/perfusion/inference/blocks"
	"github.com/perfusion-studio/perfusion/inference/weights"
)

// Prefix is the checkpoint key prefix of the text encoder's tensors (HF
// CLIPTextModel names under SD1.5's cond_stage_model).
const Prefix = "cond_stage_model.transformer.text_model."

// Activation names of the MLP nonlinearity (HF hidden_act).
const (
	QuickGELU = "quick_gelu" // x*sigmoid(1.702x): OpenAI CLIP, SD1.x
	GELU      = "gelu"       // exact erf GELU: OpenCLIP (SD2)
)

// Config holds the text transformer's hyper-parameters, named after the HF
// CLIPTextConfig fields.
type Config struct {
	VocabSize        int     // vocab_size: token embedding rows
	HiddenSize       int     // hidden_size: width D
	NumLayers        int     // num_hidden_layers
	NumHeads         int     // num_attention_heads
	IntermediateSize int     // intermediate_size: MLP hidden width
	MaxPositions     int     // max_position_embeddings: T, the context length
	LayerNormEps     float32 // layer_norm_eps
	HiddenAct        string  // hidden_act: QuickGELU or GELU
}

// SD15 is SD1.5's text encoder, openai/clip-vit-large-patch14's text tower
// (its config.json text_config; cond_stage_config FrozenCLIPEmbedder of
// v1-inference.yaml).
func SD15() Config {
	return Config{
		VocabSize:        49408,
		HiddenSize:       768,
		NumLayers:        12,
		NumHeads:         12,
		IntermediateSize: 3072,
		MaxPositions:     77,
		LayerNormEps:     1e-5,
		HiddenAct:        QuickGELU,
	}
}

// headWidth is the CLIP head width used to guess the head count from
// shapes (ViT-L/14 and ViT-H/14 text towers both use 64).
const headWidth = 64

// Validate checks that the sizes fit together.
func (c Config) Validate() error {
	switch {
	case c.NumLayers > maxLayers || c.HiddenSize > maxWidth || c.IntermediateSize > 4*maxWidth ||
		c.MaxPositions > maxPositions || c.VocabSize > maxVocab:
		return fmt.Errorf("clip: config: sizes beyond any CLIP text encoder (%v): the file is not an SD text encoder or is corrupt", c)
	case c.VocabSize <= 0 || c.HiddenSize <= 0 || c.NumLayers <= 0 || c.IntermediateSize <= 0 || c.MaxPositions <= 0:
		return fmt.Errorf("clip: config: sizes must be positive: %v", c)
	case c.NumHeads <= 0 || c.HiddenSize%c.NumHeads != 0:
		return fmt.Errorf("clip: config: width %d does not split into %d heads", c.HiddenSize, c.NumHeads)
	case !(c.LayerNormEps > 0 && c.LayerNormEps < 1): // NaN fails too
		return fmt.Errorf("clip: config: layer_norm_eps %g must be positive and small (CLIP uses 1e-5)", c.LayerNormEps)
	case c.HiddenAct != QuickGELU && c.HiddenAct != GELU:
		return fmt.Errorf("clip: config: unsupported hidden_act %q", c.HiddenAct)
	}
	return nil
}

// String prints the config on one line, for logs.
func (c Config) String() string {
	return fmt.Sprintf("clip{vocab %d width %d layers %d heads %d mlp %d ctx %d eps %g %s}",
		c.VocabSize, c.HiddenSize, c.NumLayers, c.NumHeads, c.IntermediateSize, c.MaxPositions, c.LayerNormEps, c.HiddenAct)
}

// Bounds far beyond any CLIP text encoder, so that a corrupt or hostile file
// cannot make the loaders loop or allocate without end.
const (
	maxLayers    = 128
	maxWidth     = 1 << 14
	maxPositions = 1 << 12
	maxVocab     = 1 << 20
)

var layerKey = regexp.MustCompile(`^encoder\.layers\.(\d+)\.`)

// DetectConfig infers the config from tensor shapes keyed by names relative
// to Prefix (weights.Shapes(src, clip.Prefix)): vocabulary, width, layers,
// MLP width and context length. Heads are width/64 (as in ViT-L/14); the
// epsilon and activation are SD1.5's.
func DetectConfig(shapes map[string][]int) (Config, error) {
	c := SD15()
	get := func(name string) ([]int, error) {
		s, ok := shapes[name]
		if !ok || len(s) != 2 {
			return nil, fmt.Errorf("clip: detect config: tensor %q missing or not 2-D (%v)", Prefix+name, s)
		}
		return s, nil
	}
	tok, err := get("embeddings.token_embedding.weight") // [vocab, D]
	if err != nil {
		return Config{}, err
	}
	pos, err := get("embeddings.position_embedding.weight") // [T, D]
	if err != nil {
		return Config{}, err
	}
	fc1, err := get("encoder.layers.0.mlp.fc1.weight") // [intermediate, D]
	if err != nil {
		return Config{}, err
	}
	c.VocabSize, c.HiddenSize, c.MaxPositions, c.IntermediateSize = tok[0], tok[1], pos[0], fc1[0]
	c.NumLayers = 0
	for name := range shapes {
		if m := layerKey.FindStringSubmatch(name); m != nil {
			i, _ := strconv.Atoi(m[1])
			c.NumLayers = max(c.NumLayers, i+1)
		}
	}
	c.NumHeads = max(1, c.HiddenSize/headWidth)
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ConfigFromJSON reads a config from JSON: an HF CLIPTextConfig
// (text_encoder/config.json: hidden_size, num_hidden_layers, ...) or the
// OpenAI CLIP names (width, layers, heads, context_length, vocab_size; MLP
// width 4*width), also wrapped as {"config": {...}}. Fields the file does
// not give keep their SD1.5 values.
func ConfigFromJSON(data []byte) (Config, error) {
	f, err := blocks.ParseFields(data)
	if err != nil {
		return Config{}, fmt.Errorf("clip: config json: %w", err)
	}
	f = f.Unwrap()
	if tc := f.Object("text_config"); tc != nil { // a full CLIPConfig
		f = tc
	}
	c := SD15()
	f.Int("vocab_size", &c.VocabSize)
	if f.Int("width", &c.HiddenSize) { // OpenAI names
		c.IntermediateSize = 4 * c.HiddenSize // OpenAI CLIP mlp_ratio
	}
	f.Int("layers", &c.NumLayers)
	f.Int("heads", &c.NumHeads)
	f.Int("context_length", &c.MaxPositions)
	f.Int("hidden_size", &c.HiddenSize) // HF names
	f.Int("num_hidden_layers", &c.NumLayers)
	f.Int("num_attention_heads", &c.NumHeads)
	f.Int("intermediate_size", &c.IntermediateSize)
	f.Int("max_position_embeddings", &c.MaxPositions)
	f.Float32("layer_norm_eps", &c.LayerNormEps)
	f.String("hidden_act", &c.HiddenAct)
	if err := f.Err(); err != nil {
		return Config{}, fmt.Errorf("clip: config json: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Detect infers the config of the text encoder in src (see DetectConfig).
func Detect(src weights.Source) (Config, error) {
	return DetectConfig(weights.Shapes(src, Prefix))
}

// Tensors lists every tensor Load reads for cfg, full checkpoint key ->
// shape (the first accepted shape where a weight may take several), as
// blocks.Expected finds them: a checkpoint holding exactly these loads.
func Tensors(cfg Config) (map[string][]int, error) {
	return blocks.Expected(func(src weights.Source) error {
		_, err := Load(nil, src, cfg)
		return err
	})
}
