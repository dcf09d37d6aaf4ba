package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion"
)

// testCLI returns a cli over fake commands and a fake GUI, with its output.
func testCLI(cmds ...command) (c *cli, stdout, stderr *bytes.Buffer, guiRuns *int) {
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	c = newCLI(stdout, stderr)
	c.commands = cmds
	guiRuns = new(int)
	c.gui = func(guiOptions) error { *guiRuns++; return nil }
	return c, stdout, stderr, guiRuns
}

func TestVersionPrintsFyneAppTOMLVersion(t *testing.T) {
	info, err := perfusion.AppInfo()
	if err != nil {
		t.Fatal(err)
	}
	c, stdout, _, guiRuns := testCLI()
	if code := c.run([]string{"--version"}); code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	got := strings.TrimSpace(stdout.String())
	if got != info.String() || !strings.Contains(got, " "+info.Version+" ") {
		t.Errorf("--version printed %q, want %q", got, info.String())
	}
	if *guiRuns != 0 {
		t.Error("--version opened the GUI")
	}
}

func TestNoArgsOpensGUI(t *testing.T) {
	c, _, stderr, guiRuns := testCLI()
	if code := c.run(nil); code != exitOK || *guiRuns != 1 {
		t.Errorf("exit %d after %d GUI runs, want 0 after 1", code, *guiRuns)
	}
	c.gui = func(guiOptions) error { return errors.New("no display") }
	if code := c.run(nil); code != exitError || !strings.Contains(stderr.String(), "perfusion: no display") {
		t.Errorf("exit %d, stderr %q; want 1 and the error", code, stderr)
	}
}

// TestModelFlagOpensGUIOnModel: --model PATH opens the window on PATH made
// absolute; with a headless command, or without a value, it is a usage error.
func TestModelFlagOpensGUIOnModel(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", "m.safetensors"}, filepath.Join(dir, "m.safetensors")},
		{[]string{"-model=sub/folder/"}, filepath.Join(dir, "sub", "folder")},
		{[]string{"--model", "/abs/model.ckpt"}, "/abs/model.ckpt"},
	} {
		c, _, stderr, _ := testCLI()
		var got []guiOptions
		c.gui = func(opt guiOptions) error { got = append(got, opt); return nil }
		if code := c.run(tc.args); code != exitOK || len(got) != 1 || got[0].model != tc.want {
			t.Errorf("%q: exit %d, GUI runs %+v, stderr %q; want 0 and one run on %q", tc.args, code, got, stderr, tc.want)
		}
	}
	c, _, _, guiRuns := testCLI()
	if code := c.run(nil); code != exitOK || *guiRuns != 1 {
		t.Fatalf("no args: exit %d, %d GUI runs", code, *guiRuns)
	}
	c.gui = func(opt guiOptions) error {
		if opt.model != "" {
			t.Errorf("no --model, yet the GUI opens %q", opt.model)
		}
		return nil
	}
	c.run(nil)

	for _, tc := range []struct {
		args     []string
		inStderr string
	}{
		{[]string{"--model", "m.safetensors", "generate"}, "--model m.safetensors opens the desktop app"},
		{[]string{"--model"}, "flag needs an argument"},
	} {
		c, _, stderr, guiRuns := testCLI(command{name: "generate", run: func(context.Context, []string) error {
			t.Errorf("%q ran the headless command", tc.args)
			return nil
		}})
		if code := c.run(tc.args); code != exitUsage || *guiRuns != 0 || !strings.Contains(stderr.String(), tc.inStderr) {
			t.Errorf("%q: exit %d after %d GUI runs, stderr %q; want %d, none, and %q", tc.args, code, *guiRuns, stderr, exitUsage, tc.inStderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"--no-such-flag"}, exitUsage, "flag provided but not defined"},
		{[]string{"-h"}, exitOK, "There are no headless commands yet."},
	} {
		c, _, stderr, guiRuns := testCLI()
		if code := c.run(tc.args); code != tc.code {
			t.Errorf("%q: exit %d, want %d", tc.args, code, tc.code)
		}
		if s := stderr.String(); !strings.Contains(s, tc.inStderr) || !strings.Contains(s, "Usage:") {
			t.Errorf("%q: stderr %q, want usage and %q", tc.args, s, tc.inStderr)
		}
		if *guiRuns != 0 {
			t.Errorf("%q opened the GUI", tc.args)
		}
	}
}

func TestSubcommandDispatch(t *testing.T) {
	var gotArgs []string
	fail := func(err error) func(context.Context, []string) error {
		return func(context.Context, []string) error { return err }
	}
	c, _, stderr, guiRuns := testCLI(
		command{name: "echo", summary: "records its args", run: func(ctx context.Context, args []string) error {
			if ctx == nil || ctx.Err() != nil {
				return errors.New("no live context")
			}
			gotArgs = args
			return nil
		}},
		command{name: "boom", summary: "fails", run: fail(errors.New("exploded"))},
		command{name: "badflag", summary: "bad flags", run: fail(fmt.Errorf("%w: flag -x needs a value", errUsage))},
	)
	if code := c.run([]string{"echo", "-n", "3", "x"}); code != exitOK {
		t.Errorf("echo: exit %d, stderr %q", code, stderr)
	}
	if want := []string{"-n", "3", "x"}; !slices.Equal(gotArgs, want) {
		t.Errorf("echo got args %q, want %q", gotArgs, want)
	}
	if code := c.run([]string{"boom"}); code != exitError || !strings.Contains(stderr.String(), "perfusion boom: exploded") {
		t.Errorf("boom: exit %d, stderr %q", code, stderr)
	}
	if code := c.run([]string{"badflag"}); code != exitUsage {
		t.Errorf("badflag: exit %d, want %d", code, exitUsage)
	}
	stderr.Reset()
	c.run([]string{"-h"})
	for _, name := range []string{"echo", "records its args", "boom", "badflag"} {
		if !strings.Contains(stderr.String(), name) {
			t.Errorf("usage does not list %q:\n%s", name, stderr)
		}
	}
	if *guiRuns != 0 {
		t.Error("a subcommand opened the GUI")
	}
}

// TestCommandsRunOffTheCallingGoroutine: main() calls run on the main
// goroutine, which the window toolkit locks to the main OS thread; the GUI
// must stay there, and a headless command must not (a locked goroutine
// hands its processor between threads at every wait, which left a core
// idle for a fifth of every sampling step).
func TestCommandsRunOffTheCallingGoroutine(t *testing.T) {
	var cmdG, guiG uint64
	c, _, stderr, _ := testCLI(command{name: "where", summary: "records its goroutine", run: func(context.Context, []string) error {
		cmdG = goroutineID(t)
		return nil
	}})
	c.gui = func(guiOptions) error { guiG = goroutineID(t); return nil }
	self := goroutineID(t)
	if code := c.run([]string{"where"}); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if cmdG == 0 || cmdG == self {
		t.Errorf("the command ran on goroutine %d, the caller's is %d; want another", cmdG, self)
	}
	if code := c.run(nil); code != exitOK {
		t.Fatalf("GUI: exit %d, stderr %q", code, stderr)
	}
	if guiG != self {
		t.Errorf("the GUI ran on goroutine %d, want the caller's (%d)", guiG, self)
	}
}

// goroutineID is the calling goroutine's number, read from its stack
// header ("goroutine 7 [running]:").
func goroutineID(t *testing.T) uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	if len(f) < 2 || f[0] != "goroutine" {
		t.Fatalf("unexpected stack header %q", buf)
	}
	id, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		t.Fatalf("stack header %q: %v", buf, err)
	}
	return id
}

func TestRegisteredCommandsAreComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, cmd := range commands() {
		if cmd.name == "" || cmd.summary == "" || cmd.run == nil {
			t.Errorf("command %+v lacks a name, summary or run", cmd)
		}
		if seen[cmd.name] {
			t.Errorf("command %q registered twice", cmd.name)
		}
		seen[cmd.name] = true
	}
}

func TestHelp(t *testing.T) {
	var gotArgs []string
	echo := command{name: "echo", summary: "records its args", run: func(_ context.Context, args []string) error {
		gotArgs = args
		return nil
	}}

	c, stdout, stderr, guiRuns := testCLI(echo)
	if code := c.run([]string{"help"}); code != exitOK || stderr.Len() != 0 {
		t.Errorf("help: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	for _, want := range []string{"Usage:", "perfusion help [COMMAND]", "echo", "records its args"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help printed %q on stdout, want %q in it", stdout, want)
		}
	}

	if code := c.run([]string{"help", "echo"}); code != exitOK || !slices.Equal(gotArgs, []string{"-h"}) {
		t.Errorf("help echo: exit %d, the command got %q; want 0 and -h", code, gotArgs)
	}
	for _, args := range [][]string{{"help", "nope"}, {"help", "echo", "extra"}} {
		stderr.Reset()
		if code := c.run(args); code != exitUsage || stderr.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want %d and a message", args, code, stderr, exitUsage)
		}
	}
	if *guiRuns != 0 {
		t.Error("help opened the GUI")
	}
}
