package ckpt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/checkpoint/internal/ckpttest"
)

// costPatterns are pickles that repeat one construct n times, one for each
// way the unpickler allocates: values left on the stack, containers grown
// item by item, memo entries, strings, tuples, placeholders.
func costPatterns(n int) map[string][]byte {
	rep := func(b []byte) []byte { return bytes.Repeat(b, n) }
	le32 := func(i int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(i)) }
	seq := func(f func(i int) []byte) []byte {
		var b []byte
		for i := range n {
			b = append(b, f(i)...)
		}
		return b
	}
	cat := func(parts ...[]byte) []byte { return append([]byte{0x80, 2}, append(bytes.Join(parts, nil), '.')...) }
	b := func(s string) []byte { return []byte(s) }
	return map[string][]byte{
		"None under a MARK":      cat(b("("), rep(b("N")), b("l")),
		"None appended":          cat(b("]("), rep(b("N")), b("e")),
		"APPEND one by one":      cat(b("]"), rep(b("Na"))),
		"empty dicts":            cat(b("("), rep(b("}")), b("l")),
		"empty lists":            cat(b("("), rep(b("]")), b("l")),
		"empty tuples":           cat(b("("), rep(b(")")), b("l")),
		"empty sets":             cat(b("("), rep([]byte{0x8f}), b("l")),
		"BININT1":                cat(b("("), rep(b("K\x07")), b("l")),
		"BININT":                 cat(b("("), seq(func(i int) []byte { return append(b("J"), le32(i)...) }), b("l")),
		"BINFLOAT":               cat(b("("), rep(b("G\x3f\xf0\x00\x00\x00\x00\x00\x00")), b("l")),
		"text INT":               cat(b("("), rep(b("I12345\n")), b("l")),
		"text FLOAT":             cat(b("("), rep(b("F1.5\n")), b("l")),
		"text LONG":              cat(b("("), rep(b("L123456789012345678901234567890L\n")), b("l")),
		"LONG1":                  cat(b("("), rep(b("\x8a\x08\x01\x02\x03\x04\x05\x06\x07\x08")), b("l")),
		"BINUNICODE 1 byte":      cat(b("("), rep(b("X\x01\x00\x00\x00a")), b("l")),
		"SHORT_BINUNICODE 16":    cat(b("("), rep(b("\x8c\x10abcdefghijklmnop")), b("l")),
		"SHORT_BINBYTES 1":       cat(b("("), rep(b("C\x01a")), b("l")),
		"STRING":                 cat(b("("), rep(b("S'ab'\n")), b("l")),
		"UNICODE":                cat(b("("), rep(b("Vab\n")), b("l")),
		"DUP":                    cat(b("(N"), rep(b("2")), b("l")),
		"BINGET":                 cat(b("Nq\x00("), rep(b("h\x00")), b("l")),
		"LONG_BINPUT":            cat(b("N"), seq(func(i int) []byte { return append(b("r"), le32(i)...) })),
		"MEMOIZE":                cat(b("N"), rep([]byte{0x94})),
		"PUT":                    cat(b("N"), seq(func(i int) []byte { return append(append(b("p"), b(strings.Repeat("1", 1+i%7))...), '\n') })),
		"TUPLE1":                 cat(b("("), rep(b("N\x85")), b("l")),
		"TUPLE3":                 cat(b("("), rep(b("NNN\x87")), b("l")),
		"MARK TUPLE":             cat(b("("), rep(b("(Nt")), b("l")),
		"MARK POP_MARK":          cat(rep(b("(1")), b("N")),
		"dict SETITEMS":          cat(b("}("), seq(func(i int) []byte { return append(append(b("J"), le32(i)...), 'N') }), b("u")),
		"dict SETITEM":           cat(b("}"), seq(func(i int) []byte { return append(append(b("J"), le32(i)...), 'N', 's') })),
		"OrderedDict SETITEMS":   cat(b("ccollections\nOrderedDict\n)R("), seq(func(i int) []byte { return append(append(b("J"), le32(i)...), 'N') }), b("u")),
		"OrderedDict SETITEM":    cat(b("ccollections\nOrderedDict\n)R"), seq(func(i int) []byte { return append(append(b("J"), le32(i)...), 'N', 's') })),
		"set ADDITEMS":           cat([]byte{0x8f}, b("("), seq(func(i int) []byte { return append(b("J"), le32(i)...) }), []byte{0x90}),
		"FROZENSET":              cat(b("("), rep(b("(N\x91")), b("l")),
		"dict from MARK":         cat(b("("), rep(b("(NNd")), b("l")),
		"inert REDUCE chain":     cat(b("cnumpy\ndtype\n"), rep(b(")R"))),
		"inert REDUCE":           cat(b("cnumpy\ndtype\nq\x00("), rep(b("h\x00)R")), b("l")),
		"inert NEWOBJ and BUILD": cat(b("cnumpy\ndtype\nq\x00("), rep(b("h\x00)\x81Nb")), b("l")),
		"GLOBAL":                 cat(b("("), rep(b("cnumpy\ndtype\n")), b("l")),
		"STACK_GLOBAL":           cat(b("("), rep(b("\x8c\x05numpy\x8c\x05dtype\x93")), b("l")),
		"storages": cat(b("("), seq(func(i int) []byte {
			if i%8 != 0 { // each costs a few KiB
				return nil
			}
			var p ckptPickler
			return p.storage(i)
		}), b("l")),
	}
}

// ckptPickler writes a persistent storage reference.
type ckptPickler struct{ ckpttest.Pickler }

func (p *ckptPickler) storage(i int) []byte {
	p.Op('(').Str("storage").Global("torch", "FloatStorage").Str(strconv.Itoa(i)).Str("cpu").Int(1).Op('t', 'Q')
	return p.B.Bytes()
}

// TestCostEstimateBoundsAllocation checks the scan's memory estimate
// against what the unpickler really allocates (all allocations, garbage
// included: an upper bound of the peak heap) for each kind of bulk input.
func TestCostEstimateBoundsAllocation(t *testing.T) {
	n := 40_000
	if testing.Short() {
		n = 10_000
	}
	for name, p := range costPatterns(n) {
		est, err := scanCost(p)
		if err != nil {
			t.Errorf("%s: scan: %v", name, err)
			continue
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, uerr := unpickle(p)
		runtime.ReadMemStats(&after)
		got := after.TotalAlloc - before.TotalAlloc
		t.Logf("%-24s estimate %7.1f MB, allocated %7.1f MB (%.2f), %v", name, float64(est)/1e6, float64(got)/1e6, float64(got)/float64(est), uerr)
		if got > uint64(est) {
			t.Errorf("%s: allocated %d bytes, more than the estimate %d", name, got, est)
		}
	}
}

// TestCostOfStateDict keeps the estimate of a real-sized state dict far
// under the limit: 1,200 tensors laid out as torch.save writes them.
func TestCostOfStateDict(t *testing.T) {
	var tensors []ckpttest.Tensor
	for i := range 1200 {
		tensors = append(tensors, ckpttest.Tensor{Name: fmt.Sprintf("model.diffusion_model.output_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", i), DType: "F16", Shape: []int{320, 768}})
	}
	p := ckpttest.StateDictPickle(tensors, ckpttest.Options{Nested: true})
	est, err := scanCost(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tensors: %d-byte pickle, estimate %.1f MiB (%.1f KiB per tensor)", len(tensors), len(p), float64(est)/(1<<20), float64(est)/1024/float64(len(tensors)))
	if est > maxPickleCost/8 {
		t.Errorf("estimate %d for %d tensors leaves too little room under %d", est, len(tensors), maxPickleCost)
	}
}
