package pipeline

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"sync"
	"weak"

	"github.com/perfusion-studio/perfusion/inference/tensor"
	"github.com/perfusion-studio/perfusion/inference/tokenizer"
)

// EncodingCache keeps text encodings across generations, so that a
// request whose prompts, text options and added words (with their
// embeddings) were encoded before does not run the text encoder again:
// moving a concept's gate, the seed or the sampler re-encodes nothing.
// Each text-encoder batch is one entry, keyed by its token ids, emphasis
// weights, clip skip and the added words' embedding bits, so results are
// bit for bit those of an uncached run. The cache serves one pipeline at
// a time: used with another, it empties itself. It holds at most its
// byte budget of encodings, dropping the least recently used. Its
// methods are safe for concurrent use.
type EncodingCache struct {
	maxBytes int64

	mu      sync.Mutex
	owner   weak.Pointer[Pipeline]
	entries map[[sha256.Size]byte]*list.Element
	lru     list.List // of *cacheEntry, most recent first
	bytes   int64
	stats   CacheStats
}

// CacheStats count an EncodingCache's lookups: Misses is the number of
// text-encoder runs made through the cache.
type CacheStats struct {
	Hits, Misses int
}

type cacheEntry struct {
	key  [sha256.Size]byte
	encs []Encoding
	size int64
}

// NewEncodingCache returns a cache holding at most maxBytes of encodings
// (an SD1.x prompt is 77×768 floats, 236 KB); maxBytes ≤ 0 is 64 MiB.
func NewEncodingCache(maxBytes int64) *EncodingCache {
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	return &EncodingCache{maxBytes: maxBytes, entries: map[[sha256.Size]byte]*list.Element{}}
}

// Stats returns the hits and misses so far.
func (c *EncodingCache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Len returns the number of cached text-encoder batches.
func (c *EncodingCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Clear drops every entry (the statistics stay).
func (c *EncodingCache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
}

func (c *EncodingCache) clear() {
	clear(c.entries)
	c.lru.Init()
	c.bytes = 0
}

// encodingKey identifies one text-encoder batch.
func encodingKey(per [][]tokenizer.Chunk, clipSkip int, extra tensor.Tensor) [sha256.Size]byte {
	h := sha256.New()
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	put(uint64(clipSkip))
	put(uint64(len(per)))
	for _, chunks := range per {
		put(uint64(len(chunks)))
		for _, ch := range chunks {
			for _, id := range ch.IDs {
				put(uint64(id))
			}
			for _, w := range ch.Weights {
				put(uint64(math.Float64bits(float64(w))))
			}
		}
	}
	if extra.Valid() {
		for i := range extra.Rank() {
			put(uint64(extra.Dim(i)))
		}
		for _, v := range extra.Data() {
			put(uint64(math.Float32bits(v)))
		}
	} else {
		put(math.MaxUint64)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// get returns a copy of the encodings cached for key with pipeline p.
func (c *EncodingCache) get(p *Pipeline, key [sha256.Size]byte) ([]Encoding, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner.Value() != p {
		c.clear()
		c.owner = weak.Make(p)
	}
	e, ok := c.entries[key]
	if !ok {
		c.stats.Misses++
		return nil, false
	}
	c.stats.Hits++
	c.lru.MoveToFront(e)
	return cloneEncodings(e.Value.(*cacheEntry).encs)
}

// put stores a copy of encs for key with pipeline p.
func (c *EncodingCache) put(p *Pipeline, key [sha256.Size]byte, encs []Encoding) {
	stored, _ := cloneEncodings(encs)
	var size int64
	for _, e := range stored {
		size += 4 * int64(e.Hidden.Size())
	}
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner.Value() != p {
		return // another pipeline took the cache meanwhile
	}
	if _, ok := c.entries[key]; ok {
		return
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, encs: stored, size: size})
	c.bytes += size
	for c.bytes > c.maxBytes {
		old := c.lru.Back()
		e := old.Value.(*cacheEntry)
		c.lru.Remove(old)
		delete(c.entries, e.key)
		c.bytes -= e.size
	}
}

// cloneEncodings copies encodings, so that the cache's stay untouched.
func cloneEncodings(encs []Encoding) ([]Encoding, bool) {
	out := make([]Encoding, len(encs))
	for i, e := range encs {
		h := e.Hidden
		t, err := tensor.New(append([]float32(nil), h.Data()...), h.Shape()...)
		if err != nil {
			return nil, false
		}
		out[i] = Encoding{Chunks: append([]tokenizer.Chunk(nil), e.Chunks...), Hidden: t}
	}
	return out, true
}
