package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/perfusion-studio/perfusion/app/export"
	"github.com/perfusion-studio/perfusion/concepts"
	"github.com/perfusion-studio/perfusion/concepts/conceptfile"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/concepts/edit"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// conceptFlags are generate's concept settings: --concept (repeated),
// --gate NAME=BETA[,TAU] (repeated), --multi, --lock and --cache.
type conceptFlags struct {
	files       repeated
	gates       repeated
	multi, lock string
	cacheDir    string
}

// gate is a parsed --gate value; tau 0 keeps the concept's own.
type gate struct{ beta, tau float64 }

// parseGates reads the --gate values into gates by lower-cased name.
func parseGates(vals []string) (map[string]gate, error) {
	out := map[string]gate{}
	for _, v := range vals {
		name, nums, ok := strings.Cut(v, "=")
		name = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(name), "<"), ">"))
		if !ok || name == "" {
			return nil, fmt.Errorf("--gate %q: want NAME=BETA,TAU (e.g. tubby=0.7,0.15)", v)
		}
		parts := strings.Split(nums, ",")
		if len(parts) > 2 {
			return nil, fmt.Errorf("--gate %q: want NAME=BETA or NAME=BETA,TAU", v)
		}
		var g gate
		for i, s := range parts {
			x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, fmt.Errorf("--gate %q: %q is not a number", v, s)
			}
			if i == 0 {
				g.beta = x
			} else {
				g.tau = x
			}
		}
		check := g
		if check.tau == 0 && len(parts) == 1 {
			check.tau = concepts.MinTau
		}
		if err := concepts.CheckGate(check.beta, check.tau); err != nil {
			return nil, fmt.Errorf("--gate %s: %v", v, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--gate: %s given twice", name)
		}
		out[name] = g
	}
	return out, nil
}

// conceptFile is one --concept file, read before the model loads.
type conceptFile struct {
	f    *conceptfile.Concept
	hash string
}

// readConcepts reads the --concept files and checks them against the
// prompts and the --gate names: a concept written in a prompt must be
// given, a gate must name a given concept; a given concept absent from the
// prompts is only a warning (it still applies, to words like its
// superclass).
func readConcepts(cf conceptFlags, prompts []string, warn io.Writer) ([]conceptFile, map[string]gate, error) {
	gates, err := parseGates(cf.gates)
	if err != nil {
		return nil, nil, err
	}
	if _, err := concepts.ParseMulti(cf.multi); err != nil {
		return nil, nil, fmt.Errorf("--multi: %v", err)
	}
	if _, err := concepts.ParseLock(cf.lock); err != nil {
		return nil, nil, fmt.Errorf("--lock: %v", err)
	}
	var out []conceptFile
	var names []string
	for _, path := range cf.files {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("--concept: %w", err)
		}
		f, err := conceptfile.Decode(data)
		if err != nil {
			return nil, nil, fmt.Errorf("--concept %s: %w", path, err)
		}
		n := strings.ToLower(f.Name)
		if slices.Contains(names, n) {
			return nil, nil, fmt.Errorf("--concept %s: a concept named %s is already given", path, f.Name)
		}
		names = append(names, n)
		out = append(out, conceptFile{f: f, hash: concepts.FileHash(data)})
	}
	for name := range gates {
		if !slices.Contains(names, name) {
			return nil, nil, fmt.Errorf("--gate %s: no --concept file holds a concept of that name (given: %s)", name, orNothing(names))
		}
	}
	used := concepts.PromptNames(prompts...)
	for _, n := range used {
		if !slices.Contains(names, n) {
			return nil, nil, fmt.Errorf("the prompt uses <%s> but no --concept file holds it (given: %s)", n, orNothing(names))
		}
	}
	for _, n := range names {
		if !slices.Contains(used, n) {
			fmt.Fprintf(warn, "warning: concept %s is given but not written <%s> in the prompt; it still applies where the prompt is like its superclass\n", n, n)
		}
	}
	return out, gates, nil
}

func orNothing(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// conceptEdit builds the generation's edit for the loaded model p at path
// (nil with no concepts) and the concepts as the PNG records them. C is
// read from the cache or computed, with progress on pr.
func conceptEdit(ctx context.Context, cf conceptFlags, files []conceptFile, gates map[string]gate, path string, p *pipeline.Pipeline, pr *progressPrinter) (*edit.Set, []export.ConceptUse, error) {
	if len(files) == 0 {
		return nil, nil, nil
	}
	base, err := concepts.BaseHash(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	multi, _ := concepts.ParseMulti(cf.multi)
	lock, _ := concepts.ParseLock(cf.lock)
	var uses []concepts.Use
	var recs []export.ConceptUse
	for _, c := range files {
		ec, err := concepts.FromFile(c.f, p, base)
		if err != nil {
			return nil, nil, err
		}
		g, ok := gates[strings.ToLower(c.f.Name)]
		beta, tau := float64(c.f.Beta), float64(c.f.Tau)
		if ok {
			beta = g.beta
			if g.tau != 0 {
				tau = g.tau
			}
		}
		uses = append(uses, concepts.Use{Concept: ec, Beta: beta, Tau: tau})
		recs = append(recs, export.ConceptUse{Name: c.f.Name, Hash: c.hash, Beta: beta, Tau: tau, Locking: lock.String()})
	}
	dir := cf.cacheDir
	if dir == "" {
		if dir, err = concepts.DefaultCacheDir(); err != nil {
			return nil, nil, fmt.Errorf("%w; give one with --cache", err)
		}
	}
	cv, st, err := concepts.Covariance(ctx, p, nil, dir, func(c covariance.Progress) {
		pr.update(fmt.Sprintf("text covariance (once per model): %d/%d captions  ETA %s", c.Done, c.Total, clock(c.ETA)))
	})
	pr.done()
	if err != nil {
		return nil, nil, err
	}
	if st.Problem != nil {
		pr.line(fmt.Sprintf("covariance cache: %v", st.Problem))
	}
	if !st.Hit {
		pr.line("text covariance: " + cv.Summary())
	}
	for _, c := range files {
		if err := c.f.CheckCovariance(cv.Key); err != nil {
			pr.line("warning: " + err.Error())
		}
	}
	set, err := concepts.NewSet(uses, cv, edit.Options{Multi: multi, Lock: lock})
	if err != nil {
		return nil, nil, err
	}
	return set, recs, nil
}
