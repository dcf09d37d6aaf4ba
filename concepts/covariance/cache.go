package covariance

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Cache file layout (little-endian): magic "PFCOVAR\x00", version uint32,
// header length uint32, header JSON (cacheHeader), C as D×D float64, then
// a CRC-32C of everything before it. A file that fails any check is not
// trusted: Get recomputes C and replaces it.
const (
	cacheMagic   = "PFCOVAR\x00"
	CacheVersion = 1
	// MaxCacheWidth bounds D in a cache file (a 4096×4096 C is 128 MiB).
	MaxCacheWidth = 4096
	maxCacheHead  = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type cacheHeader struct {
	Key      string `json:"key"`
	D        int    `json:"d"`
	Captions int    `json:"captions"`
	Tokens   int64  `json:"tokens"`
	Method   int    `json:"method"`
	Created  string `json:"created"`
}

// CachePath is the cache file of the C named key in dir.
func CachePath(dir, key string) string {
	return filepath.Join(dir, "covariance-"+key+".bin")
}

// Save writes cv (its C, not the factor) to path atomically.
func Save(path string, cv *Covariance) error {
	head, err := json.Marshal(cacheHeader{Key: cv.Key, D: cv.D, Captions: cv.Captions, Tokens: cv.Tokens,
		Method: MethodVersion, Created: time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		return fmt.Errorf("covariance: save: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(cacheMagic)
	b.Write(binary.LittleEndian.AppendUint32(nil, CacheVersion))
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(head))))
	b.Write(head)
	data := make([]byte, 0, 8*len(cv.C))
	for _, v := range cv.C {
		data = binary.LittleEndian.AppendUint64(data, math.Float64bits(v))
	}
	b.Write(data)
	b.Write(binary.LittleEndian.AppendUint32(nil, crc32.Checksum(b.Bytes(), castagnoli)))
	return atomicfile.WriteFile(path, b.Bytes())
}

// Load reads the cache file at path, checks it (magic, version, checksum,
// sizes, that it holds the C named key) and factors C.
func Load(path, key string) (*Covariance, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("covariance: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("covariance: %w", err)
	}
	max := int64(len(cacheMagic) + 8 + maxCacheHead + 8*MaxCacheWidth*MaxCacheWidth + 4)
	if st.Size() > max {
		return nil, fmt.Errorf("covariance: %s: %d bytes, larger than any cache file", path, st.Size())
	}
	raw, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return nil, fmt.Errorf("covariance: %w", err)
	}
	cv, err := decodeCache(raw, key)
	if err != nil {
		return nil, fmt.Errorf("covariance: %s: %w", path, err)
	}
	return cv, nil
}

func decodeCache(raw []byte, key string) (*Covariance, error) {
	pre := len(cacheMagic) + 8
	if len(raw) < pre+4 {
		return nil, fmt.Errorf("truncated")
	}
	if string(raw[:len(cacheMagic)]) != cacheMagic {
		return nil, fmt.Errorf("not a covariance cache file")
	}
	if v := binary.LittleEndian.Uint32(raw[len(cacheMagic):]); v != CacheVersion {
		return nil, fmt.Errorf("cache format version %d, this build uses %d (it is recomputed)", v, CacheVersion)
	}
	body, sum := raw[:len(raw)-4], binary.LittleEndian.Uint32(raw[len(raw)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("checksum mismatch: the file is corrupt")
	}
	hl := int(binary.LittleEndian.Uint32(raw[len(cacheMagic)+4:]))
	if hl > maxCacheHead || pre+hl > len(body) {
		return nil, fmt.Errorf("bad header length %d", hl)
	}
	var h cacheHeader
	if err := json.Unmarshal(body[pre:pre+hl], &h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	switch {
	case h.Key != key:
		return nil, fmt.Errorf("holds C %q, not %q", h.Key, key)
	case h.Method != MethodVersion:
		return nil, fmt.Errorf("made by method %d, this build uses %d", h.Method, MethodVersion)
	case h.D <= 0 || h.D > MaxCacheWidth || h.Captions <= 0 || h.Tokens <= 0:
		return nil, fmt.Errorf("bad sizes D=%d captions=%d tokens=%d", h.D, h.Captions, h.Tokens)
	}
	data := body[pre+hl:]
	if len(data) != 8*h.D*h.D {
		return nil, fmt.Errorf("%d bytes of C, want %d for D = %d", len(data), 8*h.D*h.D, h.D)
	}
	c := make([]float64, h.D*h.D)
	for i := range c {
		c[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
	}
	cv, err := Factor(c, h.D)
	if err != nil {
		return nil, err
	}
	cv.Key, cv.Captions, cv.Tokens = h.Key, h.Captions, h.Tokens
	return cv, nil
}

// Request says which C Get returns.
type Request struct {
	Captions    []string  // the corpus (captions.Default())
	CorpusHash  string    // captions.Hash(Captions)
	Tokenizer   Tokenizer // lays captions out as ids
	Encoder     Encoder   // the text encoder
	EncoderHash string    // WeightsHash of the encoder's weights
	CacheDir    string    // where cache files live; "" disables the cache
	// Shipped is a C file shipped with the model (ShippedPath; "" for
	// none): used, before the cache, when it holds this request's Key.
	Shipped string
}

// CacheStatus says where Get's C came from.
type CacheStatus struct {
	// Path is the file C was read from, or the cache file it was written
	// to ("" when computed without a cache).
	Path    string
	Hit     bool // C was read from a file, not computed
	Shipped bool // that file is the one shipped with the model
	// Problem is why an existing shipped or cache file was not used
	// (corrupt, another key or version, ...), or why the new cache file
	// could not be written; nil when there was no file or all went well.
	Problem error
}

// Get returns C for the request: from the file shipped with the model when
// it holds C for the request's Key, else from the cache when a valid file
// for that Key exists, otherwise computed (Compute, with opt's progress and
// ctx's cancellation) and then cached. A shipped or cached file that does
// not fit (corrupt, another Key, another width) is passed over and named in
// the status's Problem.
func Get(ctx context.Context, req Request, opt Options) (*Covariance, CacheStatus, error) {
	if req.EncoderHash == "" || req.CorpusHash == "" {
		return nil, CacheStatus{}, fmt.Errorf("covariance: the request needs the encoder and corpus hashes")
	}
	key := Key(req.EncoderHash, req.CorpusHash)
	var st CacheStatus
	var problems []error
	if req.Shipped != "" {
		cv, err := loadFor(req, req.Shipped, key)
		if err == nil {
			return cv, CacheStatus{Path: req.Shipped, Hit: true, Shipped: true}, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			problems = append(problems, fmt.Errorf("the C shipped with the model is not used: %w", err))
		}
	}
	if req.CacheDir != "" {
		st.Path = CachePath(req.CacheDir, key)
		cv, err := loadFor(req, st.Path, key)
		if err == nil {
			st.Hit, st.Problem = true, errors.Join(problems...)
			return cv, st, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			problems = append(problems, err)
		}
	}
	st.Problem = errors.Join(problems...)
	cv, err := Compute(ctx, req.Captions, req.Tokenizer, req.Encoder, opt)
	if err != nil {
		return nil, st, err
	}
	cv.Key = key
	if req.CacheDir != "" {
		if err := os.MkdirAll(req.CacheDir, 0o755); err != nil {
			problems = append(problems, fmt.Errorf("covariance: cache: %w", err))
		} else if err := Save(st.Path, cv); err != nil {
			problems = append(problems, err)
		}
		st.Problem = errors.Join(problems...)
	}
	return cv, st, nil
}

// loadFor is Load, also checking that C is as wide as req's encoder.
func loadFor(req Request, path, key string) (*Covariance, error) {
	cv, err := Load(path, key)
	if err != nil {
		return nil, err
	}
	if req.Encoder != nil && cv.D != req.Encoder.Width() {
		return nil, fmt.Errorf("covariance: %s: C is %d wide, the text encoder %d", path, cv.D, req.Encoder.Width())
	}
	return cv, nil
}
