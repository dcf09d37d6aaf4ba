package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// runDeadline bounds one run of the built binary; a deadline, not a timing
// check.
const runDeadline = 2 * time.Minute

// builtBinary is this package built once for the tests that run the real
// program; TestMain removes it.
var builtBinary struct {
	once      sync.Once
	dir, path string
	err       error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBinary.dir != "" {
		_ = os.RemoveAll(builtBinary.dir)
	}
	os.Exit(code)
}

// buildBinary builds this package (once per test run) and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	b := &builtBinary
	b.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			b.err = fmt.Errorf("go tool not on PATH: %w", err)
			return
		}
		if b.dir, err = os.MkdirTemp("", "perfusion-test-bin-"); err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(b.dir, "perfusion")
		if out, err := exec.Command(goTool, "build", "-o", b.path, ".").CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// cleanEnv is this process's environment without display and locale
// settings, with HOME in a temporary folder, plus extra ("KEY=value").
func cleanEnv(t *testing.T, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		switch {
		case key == "DISPLAY", key == "WAYLAND_DISPLAY", key == "HOME", key == "LANG", key == "LANGUAGE",
			strings.HasPrefix(key, "LC_"):
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "HOME="+t.TempDir()), extra...)
}

// runBinary runs bin with args in env and returns its exit code and output.
func runBinary(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runDeadline)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Exited():
		code = exit.ExitCode()
	default:
		t.Fatalf("perfusion %q: %v\nstderr:\n%s", args, err, errOut.String())
	}
	return code, out.String(), errOut.String()
}

// TestNoDisplayExplains runs the window with no display in the environment:
// one line that says so and points at the headless commands, exit 1, no
// panic.
func TestNoDisplayExplains(t *testing.T) {
	if checkDisplay(runtime.GOOS, func(string) string { return "" }) == nil {
		t.Skipf("%s always has a display", runtime.GOOS)
	}
	bin := buildBinary(t)
	code, stdout, stderr := runBinary(t, bin, cleanEnv(t, "LANG=C.UTF-8"))
	if code != exitError || stdout != "" {
		t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout, exitError)
	}
	if lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(stderr, "perfusion: no display") || !strings.Contains(stderr, "perfusion help") {
		t.Errorf("stderr:\n%s\nwant one line: perfusion: no display ... perfusion help", stderr)
	}
}

// TestUnreachableDisplayExplains names a display with no server behind it:
// GLFW's panic comes back as an error, without a goroutine trace.
func TestUnreachableDisplayExplains(t *testing.T) {
	if runtime.GOOS != "linux" || displayVar != "DISPLAY" {
		t.Skip("checks X11 on Linux")
	}
	const n = 4747
	if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
		t.Skipf("an X server listens on :%d", n)
	}
	bin := buildBinary(t)
	code, _, stderr := runBinary(t, bin, cleanEnv(t, fmt.Sprintf("DISPLAY=:%d", n)))
	if code != exitError || !strings.Contains(stderr, "perfusion: cannot open the window") ||
		strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
		t.Errorf("exit %d, stderr:\n%s\nwant %d and a one-line error, no panic", code, stderr, exitError)
	}
}

// TestHeadlessPrintsOnlyItsOwnOutput runs headless commands of the built
// program under locales that Fyne cannot parse (C.UTF-8 and the like) and
// ordinary ones: stderr holds exactly the command's own lines.
func TestHeadlessPrintsOnlyItsOwnOutput(t *testing.T) {
	info, err := perfusion.AppInfo()
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	var genHelp bytes.Buffer
	if _, err := parseGenerateFlags([]string{"-h"}, &genHelp); err == nil {
		t.Fatal("generate -h gave no help")
	}
	for _, locale := range [][]string{
		{"LANG=C.UTF-8"}, {"LANG=C"}, {"LC_ALL=C.UTF-8"}, {"LANG=POSIX"}, {"LANG=C.utf8", "LANGUAGE="},
		{"LANG=en_US.UTF-8"}, {"LANG=de_DE@euro"}, {},
	} {
		env := cleanEnv(t, locale...)
		for _, tc := range []struct {
			args           []string
			code           int
			stdout, stderr string // stdout "" = not checked beyond being empty where code != 0
		}{
			{[]string{"--version"}, exitOK, info.String() + "\n", ""},
			{[]string{"tokenize"}, exitUsage, "", "perfusion tokenize: usage: no prompt given\n"},
			{[]string{"bench", "--sizes", "100"}, exitUsage, "", "perfusion bench: usage: --sizes: \"100\" is not a multiple of 8 from 8 to 2048\n"},
			{[]string{"generate", "--model", "m.safetensors", "--prompt", "p", "--out", "x.png", "--width", "100"}, exitUsage, "",
				"perfusion generate: usage: --width 100: want a multiple of 8 from 8 to 2048\n"},
			{[]string{"help", "generate"}, exitOK, "", genHelp.String()},
		} {
			code, stdout, stderr := runBinary(t, bin, env, tc.args...)
			if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
				t.Errorf("%q perfusion %q: exit %d, stdout %q, stderr:\n%s\nwant exit %d, stdout %q, stderr:\n%s",
					locale, tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		}
		code, stdout, stderr := runBinary(t, bin, env, "help")
		if code != exitOK || stderr != "" || !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, "generate") {
			t.Errorf("%q perfusion help: exit %d, stdout %q, stderr %q", locale, code, stdout, stderr)
		}
	}
	t.Run("tokenize", func(t *testing.T) {
		vocab := golden.Path(t, "bpe_simple_vocab_16e6.txt.gz")
		code, stdout, stderr := runBinary(t, bin, cleanEnv(t, "LANG=C.UTF-8"), "tokenize", "--tokenizer", vocab, "a photo of a cat")
		if code != exitOK || stderr != "" || len(strings.Fields(stdout)) != 77 {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0, 77 ids and nothing on stderr", code, stdout, stderr)
		}
	})
}
