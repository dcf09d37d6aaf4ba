package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/perfusion-studio/perfusion/inference/backend"
	"github.com/perfusion-studio/perfusion/inference/backend/internal/blas"
	"github.com/perfusion-studio/perfusion/inference/internal/x86"
)

// Shape is one row-major GEMM C[M,N] = A[M,K]·B[K,N], without transposes.
type Shape struct{ M, N, K int }

// Flops is the number of floating-point operations of s (2·M·N·K).
func (s Shape) Flops() float64 { return 2 * float64(s.M) * float64(s.N) * float64(s.K) }

// String writes s as "MxNxK".
func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.M, s.N, s.K) }

// maxElems bounds each operand of a timed shape (1<<28 float32 = 1 GiB).
const maxElems = 1 << 28

// Check reports a clear error for a shape that is empty or too large to time.
func (s Shape) Check() error {
	if s.M < 1 || s.N < 1 || s.K < 1 {
		return fmt.Errorf("gemm shape %v: every size must be at least 1", s)
	}
	for _, p := range [][2]int{{s.M, s.K}, {s.K, s.N}, {s.M, s.N}} {
		if p[0] > maxElems/p[1] {
			return fmt.Errorf("gemm shape %v: an operand holds over %d values", s, maxElems)
		}
	}
	return nil
}

// ParseShape reads "MxNxK" (or with '×').
func ParseShape(v string) (Shape, error) {
	f := strings.FieldsFunc(strings.TrimSpace(v), func(r rune) bool { return r == 'x' || r == 'X' || r == '×' })
	if len(f) != 3 {
		return Shape{}, fmt.Errorf("gemm shape %q: want MxNxK", v)
	}
	var d [3]int
	for i, s := range f {
		n, err := strconv.Atoi(s)
		if err != nil {
			return Shape{}, fmt.Errorf("gemm shape %q: %q is not a number", v, s)
		}
		d[i] = n
	}
	s := Shape{d[0], d[1], d[2]}
	return s, s.Check()
}

// Timer times GEMMs on one backend. It keeps the operands of every shape it
// has run, so that later runs of the same shape time the arithmetic alone
// (no page faults); the first run of a shape is an untimed warm-up.
type Timer struct {
	be  backend.Backend
	ops map[Shape]*operands
}

type operands struct{ a, b, c []float32 }

// NewTimer returns a Timer for be.
func NewTimer(be backend.Backend) *Timer { return &Timer{be: be, ops: map[Shape]*operands{}} }

// Best runs s reps times and returns the fastest run.
func (t *Timer) Best(s Shape, reps int) (time.Duration, error) {
	if err := s.Check(); err != nil {
		return 0, err
	}
	if reps < 1 {
		return 0, fmt.Errorf("gemm %v: %d runs: want at least 1", s, reps)
	}
	o := t.ops[s]
	run := func() time.Duration {
		t0 := time.Now()
		t.be.Gemm(false, false, s.M, s.N, s.K, 1, o.a, s.K, o.b, s.N, 0, o.c, s.N)
		return time.Since(t0)
	}
	if o == nil {
		rng := rand.New(rand.NewPCG(uint64(s.M), uint64(s.N)<<32|uint64(s.K)))
		o = &operands{fill(rng, s.M*s.K), fill(rng, s.K*s.N), make([]float32, s.M*s.N)}
		t.ops[s] = o
		run() // warm-up: page faults, packing buffers, BLAS threads
	}
	best := run()
	for range reps - 1 {
		best = min(best, run())
	}
	return best, nil
}

// BLASCore names the kernels the platform BLAS linked into this build chose
// when it loaded ("Haswell", "SkylakeX", ... as OpenBLAS says; OpenBLAS
// reads OPENBLAS_CORETYPE then), or "" (Accelerate, or no BLAS).
func BLASCore() string { return blas.Core() }

// CanRunAVX512 reports whether the CPU and OS run AVX-512, so that
// OpenBLAS may be told to use its SkylakeX kernels (OPENBLAS_CORETYPE).
func CanRunAVX512() bool { return x86.HasAVX512() }

// The protocol between Client and Serve, one line each way per request:
//
//	<- "ready NAME CORE"            once, when Serve starts (CORE "-" if none)
//	-> "M N K REPS"                 a request
//	<- "ok NANOSECONDS"             the fastest of REPS runs
//	<- "error MESSAGE"              a request that cannot be run
const readyWord, okWord, errorWord = "ready", "ok", "error"

// Serve answers timing requests, one a line from r, with a Timer on be,
// until r ends or ctx is cancelled; it is the child side of Client, so that
// a library that reads its settings from the environment once (OpenBLAS's
// OPENBLAS_CORETYPE) can be timed under several settings in one benchmark.
// A bad request gets an error line and Serve goes on.
func Serve(ctx context.Context, r io.Reader, w io.Writer, be backend.Backend) error {
	core := BLASCore()
	if core == "" {
		core = "-"
	}
	if _, err := fmt.Fprintf(w, "%s %s %s\n", readyWord, be.Name(), core); err != nil {
		return fmt.Errorf("gemm server: %w", err)
	}
	t := NewTimer(be)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		var reply string
		if d, err := serveOne(t, sc.Text()); err != nil {
			reply = errorWord + " " + strings.ReplaceAll(err.Error(), "\n", "; ")
		} else {
			reply = okWord + " " + strconv.FormatInt(d.Nanoseconds(), 10)
		}
		if _, err := fmt.Fprintln(w, reply); err != nil {
			return fmt.Errorf("gemm server: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("gemm server: read requests: %w", err)
	}
	return nil
}

func serveOne(t *Timer, line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) != 4 {
		return 0, fmt.Errorf("request %q: want \"M N K REPS\"", line)
	}
	var v [4]int
	for i, s := range f {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("request %q: %q is not a number", line, s)
		}
		v[i] = n
	}
	return t.Best(Shape{v[0], v[1], v[2]}, v[3])
}

// Client asks a Serve running elsewhere (a child process, usually) for
// timings. Its methods are not safe for concurrent use.
type Client struct {
	w    io.Writer
	r    *bufio.Reader
	name string
	core string
}

// NewClient reads the server's greeting from r and returns a client that
// sends requests to w.
func NewClient(w io.Writer, r io.Reader) (*Client, error) {
	c := &Client{w: w, r: bufio.NewReader(r)}
	line, err := c.line()
	if err != nil {
		return nil, err
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != readyWord {
		return nil, fmt.Errorf("gemm client: greeting %q: want \"ready NAME CORE\"", line)
	}
	c.name, c.core = f[1], f[2]
	if c.core == "-" {
		c.core = ""
	}
	return c, nil
}

// Name is the server's backend name, e.g. "cpu/openblas".
func (c *Client) Name() string { return c.name }

// Core is the server's BLASCore(), e.g. "SkylakeX"; "" if none.
func (c *Client) Core() string { return c.core }

// Best asks the server to run s reps times and returns the fastest run.
func (c *Client) Best(s Shape, reps int) (time.Duration, error) {
	if _, err := fmt.Fprintf(c.w, "%d %d %d %d\n", s.M, s.N, s.K, reps); err != nil {
		return 0, fmt.Errorf("gemm client: send %v: %w", s, err)
	}
	line, err := c.line()
	if err != nil {
		return 0, err
	}
	word, rest, _ := strings.Cut(line, " ")
	switch word {
	case okWord:
		ns, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || ns < 0 {
			return 0, fmt.Errorf("gemm client: reply %q: bad duration", line)
		}
		return time.Duration(ns), nil
	case errorWord:
		return 0, fmt.Errorf("gemm server (%s): %s", c.name, rest)
	}
	return 0, fmt.Errorf("gemm client: reply %q: want ok or error", line)
}

func (c *Client) line() (string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("gemm client: the server closed its output")
		}
		return "", fmt.Errorf("gemm client: %w", err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// Runner times GEMMs: a Timer in this process or a Client of another.
type Runner interface {
	Best(s Shape, reps int) (time.Duration, error)
}

// Compare times every shape on every runner, interleaved: in each of rounds
// rounds, each shape runs once on each runner in turn, so that a change of
// load or clock affects them alike. best[i][j] is the fastest run of
// shapes[i] on runners[j]. progress, when set, is called after each round.
func Compare(ctx context.Context, shapes []Shape, runners []Runner, rounds int, progress func(round int)) (best [][]time.Duration, err error) {
	if rounds < 1 {
		return nil, fmt.Errorf("gemm compare: %d rounds: want at least 1", rounds)
	}
	best = make([][]time.Duration, len(shapes))
	for i := range best {
		best[i] = make([]time.Duration, len(runners))
	}
	for r := range rounds {
		for i, s := range shapes {
			for j, run := range runners {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				d, err := run.Best(s, 1)
				if err != nil {
					return nil, fmt.Errorf("gemm compare: runner %d: %w", j, err)
				}
				if r == 0 || d < best[i][j] {
					best[i][j] = d
				}
			}
		}
		if progress != nil {
			progress(r + 1)
		}
	}
	return best, nil
}

// GFLOPs is the rate of s done in d, in GFLOP/s.
func GFLOPs(s Shape, d time.Duration) float64 { return s.Flops() / d.Seconds() / 1e9 }
