package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/perfusion-studio/perfusion"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as shells report it
)

// errUsage marks a bad command line; a subcommand wraps its flag errors in it
// (fmt.Errorf("%w: %v", errUsage, err)) so that perfusion exits with 2.
var errUsage = errors.New("usage")

// cli dispatches a command line to the GUI or a headless subcommand.
type cli struct {
	commands []command
	gui      func(guiOptions) error // opens the desktop app and returns when it closes
	signals  []os.Signal            // cancel a headless command's context
	stdout   io.Writer              // --version and help output
	stderr   io.Writer              // usage and errors
}

func newCLI(stdout, stderr io.Writer) *cli {
	return &cli{
		commands: commands(),
		gui:      runGUI,
		signals:  []os.Signal{os.Interrupt, syscall.SIGTERM},
		stdout:   stdout,
		stderr:   stderr,
	}
}

// run handles args (without the program name) and returns the exit code.
func (c *cli) run(args []string) int {
	fs := flag.NewFlagSet("perfusion", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { c.usage(c.stderr) }
	version := fs.Bool("version", false, "print the version and exit")
	var opt guiOptions
	fs.StringVar(&opt.model, "model", "", "open the desktop app on this model instead of the built-in default model")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	switch {
	case *version:
		return c.printVersion()
	case opt.model != "" && fs.NArg() > 0:
		fmt.Fprintf(c.stderr, "perfusion: --model %s opens the desktop app; give a headless command its own flags (perfusion %s --model ...)\n",
			opt.model, fs.Arg(0))
		return exitUsage
	case fs.NArg() == 0:
		if opt.model != "" {
			abs, err := filepath.Abs(opt.model)
			if err != nil {
				fmt.Fprintf(c.stderr, "perfusion: --model %s: %v\n", opt.model, err)
				return exitUsage
			}
			opt.model = abs
		}
		if err := c.gui(opt); err != nil {
			fmt.Fprintln(c.stderr, "perfusion:", err)
			return exitError
		}
		return exitOK
	}
	name := fs.Arg(0)
	if name == "help" {
		return c.help(fs.Args()[1:])
	}
	if cmd, ok := c.lookup(name); ok {
		return c.runCommand(cmd, fs.Args()[1:])
	}
	return c.unknown(name)
}

// lookup finds a headless command by name.
func (c *cli) lookup(name string) (command, bool) {
	for _, cmd := range c.commands {
		if cmd.name == name {
			return cmd, true
		}
	}
	return command{}, false
}

func (c *cli) unknown(name string) int {
	fmt.Fprintf(c.stderr, "perfusion: unknown command %q\n\n", name)
	c.usage(c.stderr)
	return exitUsage
}

// help is `perfusion help [COMMAND]`: the usage on stdout, or a command's
// flags as `perfusion COMMAND -h` prints them.
func (c *cli) help(args []string) int {
	switch len(args) {
	case 0:
		c.usage(c.stdout)
		return exitOK
	case 1:
		if cmd, ok := c.lookup(args[0]); ok {
			return c.runCommand(cmd, []string{"-h"})
		}
		return c.unknown(args[0])
	}
	fmt.Fprintf(c.stderr, "perfusion help: want at most one command name, got %q\n", args)
	return exitUsage
}

// runCommand runs a headless command with a context that the signals cancel.
// After the first signal the default handling returns, so a second Ctrl-C
// kills the process at once.
func (c *cli) runCommand(cmd command, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), c.signals...)
	defer stop()
	context.AfterFunc(ctx, stop)

	err := offMainThread(func() error { return cmd.run(ctx, args) })
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(c.stderr, "perfusion %s: %v\n", cmd.name, err)
		return exitUsage
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintf(c.stderr, "perfusion %s: interrupted\n", cmd.name)
		return exitInterrupted
	default:
		fmt.Fprintf(c.stderr, "perfusion %s: %v\n", cmd.name, err)
		return exitError
	}
}

// offMainThread runs fn on a goroutine of its own and returns its error.
// The window toolkit locks the main goroutine to the main OS thread when
// the program starts (its driver needs that thread), and a goroutine that
// is locked to a thread gives its processor to another thread, and takes
// it back, every time it waits or yields: a headless command run there
// spent a fifth of every sampling step on those hand-offs, with a core
// idle meanwhile (`bench`: 157–165% CPU against 194–198% off the main
// thread, on 2 cores).
func offMainThread(fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return <-done
}

func (c *cli) printVersion() int {
	info, err := perfusion.AppInfo()
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitError
	}
	fmt.Fprintln(c.stdout, info)
	return exitOK
}

// usage writes the program's usage to w.
func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  perfusion                     open the Perfusion Studio desktop app on the built-in
                                default model (emoji, 32x32)
  perfusion --model PATH        open the app on your model (.safetensors, .ckpt, diffusers folder)
  perfusion --version           print the version and exit
  perfusion COMMAND [args...]   run a headless command; Ctrl-C cancels it
  perfusion help [COMMAND]      print this text, or a command's flags

`)
	if len(c.commands) == 0 {
		fmt.Fprintln(w, "There are no headless commands yet.")
		return
	}
	fmt.Fprintln(w, "Commands:")
	for _, cmd := range c.commands {
		fmt.Fprintf(w, "  %-12s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w, "\nRun `perfusion help COMMAND` (or `perfusion COMMAND -h`) for a command's flags.")
}
