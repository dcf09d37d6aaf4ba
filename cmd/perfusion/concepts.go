package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/library"
)

// envDataDir overrides the app's data folder (the concept library is its
// "concepts" subfolder).
const envDataDir = "PERFUSION_DATA_DIR"

func conceptsCommand() command {
	return command{
		name:    "concepts",
		summary: "list the concept library, or show what a .concept file holds",
		run: func(ctx context.Context, args []string) error {
			return oneLine(runConcepts(ctx, args, os.Stdout, os.Stderr))
		},
	}
}

// defaultConceptsDir is the library folder in the app's data folder:
// $PERFUSION_DATA_DIR/concepts, else the user config folder's
// "Perfusion Studio/concepts".
func defaultConceptsDir() (string, error) {
	if d := os.Getenv(envDataDir); d != "" {
		return filepath.Join(d, "concepts"), nil
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no data folder (set %s or pass --dir): %w", envDataDir, err)
	}
	return filepath.Join(cfg, "Perfusion Studio", "concepts"), nil
}

// runConcepts is `perfusion concepts list [--dir DIR]` and
// `perfusion concepts show [--dir DIR] FILE_OR_NAME`.
func runConcepts(_ context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: perfusion concepts list [--dir DIR]\n       perfusion concepts show [--dir DIR] FILE|NAME")
	}
	if len(args) == 0 {
		usage()
		return fmt.Errorf("%w: want list or show", errUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("concepts "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the concept library folder (default: the app's data folder, or $"+envDataDir+"/concepts)")
	fs.Usage = func() { usage(); fs.PrintDefaults() }
	if sub == "-h" || sub == "--help" || sub == "-help" {
		fs.Usage()
		return flag.ErrHelp
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	libDir := *dir
	if libDir == "" {
		d, err := defaultConceptsDir()
		if err != nil {
			return err
		}
		libDir = d
	}
	switch sub {
	case "list":
		if fs.NArg() != 0 {
			return fmt.Errorf("%w: list takes no arguments", errUsage)
		}
		return listConcepts(libDir, stdout)
	case "show":
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: show takes one FILE or library NAME", errUsage)
		}
		return showConcept(libDir, fs.Arg(0), stdout)
	}
	usage()
	return fmt.Errorf("%w: unknown concepts command %q: want list or show", errUsage, sub)
}

func listConcepts(dir string, w io.Writer) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(w, "No concept library at %s yet.\n", dir)
		return nil
	}
	lib, err := library.Open(dir)
	if err != nil {
		return err
	}
	entries, err := lib.List()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: %d concept(s)\n", dir, len(entries))
	if len(entries) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCLASS\tBETA\tTAU\tBASE MODEL\tLAYERS\tSIZE")
	for _, e := range entries {
		if e.Err != nil {
			fmt.Fprintf(tw, "%s\t(unreadable: %v)\t\t\t\t\t%s\n", e.Name, e.Err, kb(e.Size))
			continue
		}
		h := e.Header
		fmt.Fprintf(tw, "%s\t%s\t%.3g\t%.3g\t%s\t%d\t%s\n", e.Name, h.Superclass, h.Beta, h.Tau, h.BaseModel, len(h.LayerInfo), kb(e.Size))
	}
	return tw.Flush()
}

// showConcept prints a concept file, given as a path or a library name.
func showConcept(dir, arg string, w io.Writer) error {
	path := arg
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && conceptfile.ValidName(arg) == nil {
		path = filepath.Join(dir, arg+library.Ext)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("no concept file or library concept %q: %w", arg, err)
	}
	c, err := conceptfile.ReadFile(path)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, v ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, v...)...) }
	row("file", "%s (%s, format version %d)", path, kb(st.Size()), conceptfile.FormatVersion)
	row("name", "%s (write <%s> in prompts)", c.Name, c.Name)
	row("superclass", "%q (token %d)", c.Superclass, c.SuperclassToken)
	row("gate", "beta %.4g, tau %.4g", c.Beta, c.Tau)
	row("base model", "%s", c.BaseModel)
	row("covariance", "%s", c.Covariance)
	if c.Created != "" {
		row("created", "%s", c.Created)
	}
	row("width D", "%d", c.Dim)
	row("embedding", "norm %.4g", norm(c.Embedding))
	row("i*", "norm %.4g", norm(c.TargetInput))
	row("thumbnail", "%s", thumbInfo(c.Thumbnail))
	row("layers", "%d (%d outputs each for K and V)", len(c.Layers), (c.Floats()-2*c.Dim)/2)
	for _, l := range c.Layers {
		row("  "+l.Name, "out %d, |o*_K| %.4g, |o*_V| %.4g", len(l.OutK), norm(l.OutK), norm(l.OutV))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(c.Training) > 0 {
		var b bytes.Buffer
		if json.Indent(&b, c.Training, "  ", "  ") == nil {
			fmt.Fprintf(w, "training settings:\n  %s\n", b.String())
		}
	}
	return nil
}

func thumbInfo(p []byte) string {
	if len(p) == 0 {
		return "none"
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(p))
	if err != nil {
		return fmt.Sprintf("%d bytes (not decodable: %v)", len(p), err)
	}
	return fmt.Sprintf("%d×%d PNG, %d bytes", cfg.Width, cfg.Height, len(p))
}

func norm(v []float32) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func kb(n int64) string { return fmt.Sprintf("%.1f KB", float64(n)/1024) }
