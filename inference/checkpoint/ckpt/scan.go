package ckpt

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Limits that keep a hostile pickle from exhausting memory or time. The
// cost estimate below bounds everything the unpickler allocates, garbage
// included (TestCostEstimateBoundsAllocation checks it for every kind of
// bulk input); a Stable Diffusion state dict costs about 10 KiB per tensor
// by it, so the limit leaves room for 12,000 tensors, optimizer state
// included.
const (
	maxPickleSize = 32 << 20  // bytes of data.pkl
	maxPickleCost = 128 << 20 // estimated bytes the unpickler may allocate
	maxMarkDepth  = 256       // MARKs open at once (each costs a new stack)
	maxNumberLine = 256       // text INT/LONG/FLOAT arguments
	maxLongBytes  = 64        // LONG1/LONG4 arguments (decoding is quadratic)
)

// slot is the cost of one value pushed on the unpickler's stack: its stack
// slot (the stack grows by doubling, and a MARK's items are copied when
// popped) and the entry it may become in a list, set, dict or OrderedDict
// (each also grown by doubling, an OrderedDict entry being a map entry, a
// list element and a record). Measured at about 90 to 190 bytes.
const slot = 256

// baseCost is what the unpickler allocates for any pickle (its memo, stacks
// and reader).
const baseCost = 32 << 10

// argKind is how an opcode's argument is laid out in the stream.
type argKind uint8

const (
	argNone    argKind = iota
	argLine            // one '\n'-terminated line
	argLine2           // two lines (GLOBAL, INST)
	argNum             // one short numeric line
	argFixed           // fixed width (opInfo.n bytes)
	argCount1          // 1-byte length, then that many bytes
	argCount4          // 4-byte little-endian length (unsigned), then bytes
	argCount4s         // 4-byte signed length, then bytes
	argCount8          // 8-byte length, then bytes
	argLong1           // LONG1: 1-byte length
	argLong4           // LONG4: 4-byte signed length
	argFrame           // FRAME: 8-byte length of the ops that follow
)

// argCost is the bytes allocated per argument byte: a counted argument is
// read into a buffer and copied into its value; a line is read into a
// buffer grown by doubling, then converted (and unescaped) once or twice.
func (k argKind) argCost() int {
	switch k {
	case argLine, argLine2, argNum:
		return 6
	case argFrame:
		return 0 // counted in full with the frame
	}
	return 2
}

// opInfo describes one pickle opcode for the scan: argument layout, an
// estimate of the bytes the unpickler allocates for it, and its effect on
// the MARK depth.
type opInfo struct {
	arg  argKind
	n    int  // width for argFixed
	cost int  // bytes allocated (slot for each value pushed), besides a counted argument
	mark int8 // +1 pushes a MARK, -1 pops one
}

// opcodes lists every opcode of pickle protocols 0-5
// (https://github.com/python/cpython/blob/main/Lib/pickletools.py).
var opcodes = map[byte]opInfo{
	'(': {mark: 1, cost: 512}, '.': {}, '0': {}, '1': {mark: -1}, '2': {cost: slot},
	'F': {arg: argNum, cost: slot + 64}, 'I': {arg: argNum, cost: slot + 64}, 'L': {arg: argNum, cost: slot + 128},
	'J': {arg: argFixed, n: 4, cost: slot + 16}, 'K': {arg: argFixed, n: 1, cost: slot + 16}, 'M': {arg: argFixed, n: 2, cost: slot + 16},
	'N': {cost: slot}, 'P': {arg: argLine, cost: slot + 256}, 'Q': {cost: slot + 256}, 'R': {cost: slot + 256},
	'S': {arg: argLine, cost: slot + 64}, 'T': {arg: argCount4s, cost: slot + 64}, 'U': {arg: argCount1, cost: slot + 64},
	'V': {arg: argLine, cost: slot + 64}, 'X': {arg: argCount4, cost: slot + 64},
	'a': {}, 'b': {cost: 64}, 'c': {arg: argLine2, cost: slot + 128}, 'd': {mark: -1, cost: slot + 192},
	'}': {cost: slot + 192}, 'e': {mark: -1}, 'g': {arg: argNum, cost: slot}, 'h': {arg: argFixed, n: 1, cost: slot},
	'i': {arg: argLine2, mark: -1, cost: slot + 256}, 'j': {arg: argFixed, n: 4, cost: slot}, 'l': {mark: -1, cost: slot + 64},
	']': {cost: slot + 128}, 'o': {mark: -1, cost: slot + 256}, 'p': {arg: argNum, cost: 128}, 'q': {arg: argFixed, n: 1, cost: 128},
	'r': {arg: argFixed, n: 4, cost: 128}, 's': {}, 't': {mark: -1, cost: slot + 64}, ')': {cost: slot + 48},
	'u': {mark: -1}, 'G': {arg: argFixed, n: 8, cost: slot + 16},
	'B': {arg: argCount4, cost: slot + 64}, 'C': {arg: argCount1, cost: slot + 64},
	0x80: {arg: argFixed, n: 1}, 0x81: {cost: slot + 256}, 0x82: {arg: argFixed, n: 1, cost: slot + 64}, 0x83: {arg: argFixed, n: 2, cost: slot + 64},
	0x84: {arg: argFixed, n: 4, cost: slot + 64}, 0x85: {cost: slot + 64}, 0x86: {cost: slot + 80}, 0x87: {cost: slot + 96}, 0x88: {cost: slot},
	0x89: {cost: slot}, 0x8a: {arg: argLong1, cost: slot + 128}, 0x8b: {arg: argLong4, cost: slot + 128},
	0x8c: {arg: argCount1, cost: slot + 64}, 0x8d: {arg: argCount8, cost: slot + 64}, 0x8e: {arg: argCount8, cost: slot + 64},
	0x8f: {cost: slot + 128}, 0x90: {mark: -1}, 0x91: {mark: -1, cost: slot + 192}, 0x92: {cost: slot + 256},
	0x93: {cost: slot + 128}, 0x94: {cost: 128}, 0x95: {arg: argFrame}, 0x96: {arg: argCount8, cost: slot + 64},
	0x97: {cost: slot}, 0x98: {},
}

// scan walks the opcodes of a pickle up to its first STOP without building
// anything, and rejects streams whose lengths point past the end, whose
// arguments are oversized, or whose estimated allocations exceed
// maxPickleCost. It runs before the unpickler, which allocates a counted
// argument before reading it.
func scan(p []byte) error {
	_, err := scanCost(p)
	return err
}

// scanCost is scan, also returning the estimated allocation in bytes.
func scanCost(p []byte) (int, error) {
	pos, depth, cost := 0, 0, baseCost
	need := func(n int) error {
		if n < 0 || n > len(p)-pos {
			return fmt.Errorf("ckpt: pickle opcode at byte %d needs %d bytes, %d remain (truncated or corrupt data.pkl): %w",
				pos, n, len(p)-pos, ErrFormat)
		}
		return nil
	}
	line := func(limit int) (int, error) {
		i := bytes.IndexByte(p[pos:], '\n')
		if i < 0 || i >= limit {
			return 0, fmt.Errorf("ckpt: pickle opcode at byte %d: line argument missing or longer than %d bytes: %w", pos, limit, ErrFormat)
		}
		return i + 1, nil
	}
	for pos < len(p) {
		op := p[pos]
		info, ok := opcodes[op]
		if !ok {
			return 0, fmt.Errorf("ckpt: unknown pickle opcode 0x%02x at byte %d (corrupt data.pkl): %w", op, pos, ErrFormat)
		}
		at := pos
		pos++
		var n int // bytes of argument
		var err error
		switch info.arg {
		case argLine:
			n, err = line(1 << 16)
		case argNum:
			n, err = line(maxNumberLine)
		case argLine2:
			var n2 int
			if n, err = line(1 << 12); err == nil {
				pos += n
				n2, err = line(1 << 12)
				pos -= n
				n += n2
			}
		case argFixed:
			n, err = info.n, need(info.n)
		case argCount1, argLong1:
			if err = need(1); err == nil {
				n = 1 + int(p[pos])
			}
		case argCount4, argCount4s, argLong4:
			if err = need(4); err == nil {
				v := binary.LittleEndian.Uint32(p[pos:])
				if info.arg != argCount4 && v>>31 != 0 {
					return 0, fmt.Errorf("ckpt: pickle opcode at byte %d has a negative length: %w", at, ErrFormat)
				}
				n = 4 + int(v)
			}
		case argCount8, argFrame:
			if err = need(8); err == nil {
				v := binary.LittleEndian.Uint64(p[pos:])
				if v > uint64(len(p)) {
					return 0, fmt.Errorf("ckpt: pickle opcode at byte %d claims %d bytes, the pickle has %d (corrupt data.pkl): %w", at, v, len(p), ErrFormat)
				}
				n = 8 + int(v)
				if info.arg == argFrame {
					cost += int(v)
					n = 8 // the frame's ops follow and are scanned too
				}
			}
		}
		if err == nil {
			err = need(n)
		}
		if err != nil {
			return 0, err
		}
		if (info.arg == argLong1 || info.arg == argLong4) && (n == 1 || (info.arg == argLong4 && n == 4) || n > maxLongBytes+4) {
			return 0, fmt.Errorf("ckpt: pickle integer at byte %d has %d bytes, not 1 to %d: %w", at, n, maxLongBytes, ErrUnsupported)
		}
		pos += n
		cost += info.cost + info.arg.argCost()*n
		depth += int(info.mark)
		if depth < 0 {
			return 0, fmt.Errorf("ckpt: pickle opcode 0x%02x at byte %d pops a MARK that was never pushed: %w", op, at, ErrFormat)
		}
		if depth > maxMarkDepth {
			return 0, fmt.Errorf("ckpt: pickle nests more than %d MARKs: %w", maxMarkDepth, ErrUnsupported)
		}
		if cost > maxPickleCost {
			return 0, fmt.Errorf("ckpt: pickle would need more than %d MiB to load: %w", maxPickleCost>>20, ErrUnsupported)
		}
		if op == '.' {
			return cost, nil
		}
	}
	return 0, fmt.Errorf("ckpt: pickle ends without a STOP opcode (truncated data.pkl): %w", ErrFormat)
}
