package tokenizer

import (
	"container/heap"
	"math"
)

// bytesToUnicode is openai/CLIP's bytes_to_unicode: printable Latin-1 bytes
// ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves, the other 68 bytes to
// U+0100 onwards in byte order. order lists the bytes in vocabulary order
// (the printable ones first), sym maps each byte to its symbol.
func bytesToUnicode() (order [256]byte, sym [256]rune) {
	printable := func(b int) bool {
		return b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF
	}
	n, extra := 0, 0
	for b := range 256 {
		if printable(b) {
			order[n], sym[b] = byte(b), rune(b)
			n++
		}
	}
	for b := range 256 {
		if !printable(b) {
			order[n], sym[b] = byte(b), rune(256+extra)
			n++
			extra++
		}
	}
	return order, sym
}

// byteDecoder inverts bytesToUnicode.
func byteDecoder() map[rune]byte {
	_, sym := bytesToUnicode()
	dec := make(map[rune]byte, 256)
	for b, r := range sym {
		dec[r] = byte(b)
	}
	return dec
}

// pairKey packs two adjacent symbol ids into a merge-table key.
func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpe returns the ids of one split piece, through the word cache.
func (t *Tokenizer) bpe(piece string) []int32 {
	t.mu.RLock()
	ids, ok := t.cache[piece]
	t.mu.RUnlock()
	if ok {
		return ids
	}
	if t.ordered {
		ids = t.mergeWordHeap(piece)
	} else {
		ids = t.mergeWord(piece)
	}
	t.mu.Lock()
	if len(t.cache) >= maxCache {
		clear(t.cache)
	}
	t.cache[piece] = ids
	t.mu.Unlock()
	return ids
}

// mergeWord is the reference SimpleTokenizer.bpe on ids, O(n²) in the
// piece's length: start from one symbol per UTF-8
// byte (the last one with "</w>"), then repeatedly merge every occurrence,
// left to right, of the adjacent pair with the lowest rank until none ranks.
func (t *Tokenizer) mergeWord(piece string) []int32 {
	if piece == "" {
		return nil
	}
	word := make([]int32, len(piece))
	for i := 0; i < len(piece); i++ {
		word[i] = t.byteSym[piece[i]]
	}
	word[len(word)-1] = t.byteEnd[piece[len(piece)-1]]
	for len(word) > 1 {
		best := merge{rank: math.MaxInt32}
		var first, second int32
		for i := 0; i+1 < len(word); i++ {
			if m, ok := t.merges[pairKey(word[i], word[i+1])]; ok && m.rank < best.rank {
				best, first, second = m, word[i], word[i+1]
			}
		}
		if best.rank == math.MaxInt32 {
			break
		}
		w := 0 // write index; never passes the read index j
		for j := 0; j < len(word); w++ {
			if j+1 < len(word) && word[j] == first && word[j+1] == second {
				word[w] = best.id
				j += 2
			} else {
				word[w] = word[j]
				j++
			}
		}
		word = word[:w]
	}
	return word
}

// mergeWordHeap gives mergeWord's result in O(n log n): a heap of adjacent
// pairs ordered by (rank, position) over a linked list of symbols. Merging
// the leftmost lowest-ranked pair first, one occurrence at a time, equals
// mergeWord's "every occurrence, left to right" as long as each merge ranks
// after the merges that built its two symbols (t.ordered), because then no
// pair a merge creates can rank before the pair being merged.
func (t *Tokenizer) mergeWordHeap(piece string) []int32 {
	n := len(piece)
	if n == 0 {
		return nil
	}
	sym := make([]int32, n)                      // symbol id at each live position
	next, prev := make([]int, n), make([]int, n) // linked list; -1 ends it
	for i := range n {
		sym[i], next[i], prev[i] = t.byteSym[piece[i]], i+1, i-1
	}
	sym[n-1], next[n-1] = t.byteEnd[piece[n-1]], -1
	h := &pairHeap{}
	push := func(i int) {
		if i < 0 || next[i] < 0 {
			return
		}
		if m, ok := t.merges[pairKey(sym[i], sym[next[i]])]; ok {
			heap.Push(h, pairAt{m.rank, i, sym[i], sym[next[i]], m.id})
		}
	}
	for i := range n - 1 {
		push(i)
	}
	for h.Len() > 0 {
		p := heap.Pop(h).(pairAt)
		j := next[p.pos]
		if sym[p.pos] != p.left || j < 0 || sym[j] != p.right {
			continue // stale: one of its symbols was merged away
		}
		sym[p.pos], sym[j] = p.id, -1
		next[p.pos] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = p.pos
		}
		push(prev[p.pos])
		push(p.pos)
	}
	out := make([]int32, 0, n)
	for i := 0; i >= 0; i = next[i] {
		out = append(out, sym[i])
	}
	return out
}

// pairAt is a candidate merge of the symbols at pos and the next position.
type pairAt struct {
	rank        int32
	pos         int
	left, right int32
	id          int32
}

// pairHeap orders candidates by rank, then position.
type pairHeap []pairAt

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	return h[i].rank < h[j].rank || h[i].rank == h[j].rank && h[i].pos < h[j].pos
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairAt)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
