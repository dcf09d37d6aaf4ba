package evaldefault

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// passFail words a check.
func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

// Passed reports whether every figure the report holds meets its target
// (the counts of the full evaluation included).
func (r *Report) Passed() bool {
	ok := true
	for _, row := range r.rows() {
		ok = ok && row.pass
	}
	return ok
}

// row is one line of the summary table.
type row struct {
	figure, value, target string
	pass                  bool
}

func pct(a Accuracy) string {
	return fmt.Sprintf("%.0f%% (%d/%d)", 100*a.Share(), a.Correct, a.Total)
}

func (r *Report) rows() []row {
	var rows []row
	if t := r.Text; t != nil {
		rows = append(rows, row{"text conditioning: subgroup accuracy", pct(t.Accuracy) + fmt.Sprintf(", %d subgroups, chance %.1f%%", t.Subgroups, 100*t.Chance),
			fmt.Sprintf(">= %.0f%% on >= %d captions, >= %d subgroups", 100*TargetText, MinCaptions, MinSubgroups),
			t.Accuracy.Share() >= TargetText && t.Accuracy.Total >= MinCaptions && t.Subgroups >= MinSubgroups})
	}
	if b := r.Background; b != nil {
		rows = append(rows, row{"\"... on a red background\": red share", pct(b.Red),
			fmt.Sprintf(">= %.0f%% of >= %d", 100*TargetBackground, MinRedPrompts),
			b.Red.Share() >= TargetBackground && b.Red.Total >= MinRedPrompts})
	}
	if p := r.Personal; p != nil {
		closer, red := 0, Accuracy{}
		var worst time.Duration
		for _, c := range p.Concepts {
			if c.Closer() {
				closer++
			}
			red.Correct += c.Red.Correct
			red.Total += c.Red.Total
			worst = max(worst, c.TrainTime)
		}
		n := len(p.Concepts)
		rows = append(rows,
			row{"personalization: <concept> closer than the word", fmt.Sprintf("%d/%d concepts", closer, n),
				fmt.Sprintf("all, >= %d concepts", MinConcepts), closer == n && n >= MinConcepts},
			row{"personalization: <concept> on a red background", pct(red),
				fmt.Sprintf(">= %.0f%%", 100*TargetBackground), red.Share() >= TargetBackground},
			row{"concept training time (Quick), slowest", worst.Round(time.Second).String(),
				fmt.Sprintf("<= %s", TargetTrainTime), worst <= TargetTrainTime})
	}
	return rows
}

// WriteTo prints the report: the settings, the classifier's own accuracy,
// a summary table with targets, then each part's details.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "Default model evaluation of %s (native %d px; %s, %d steps, CFG %g, seed %d%s)\n\n",
		r.Model, r.NativeSize, r.Sampler, r.Steps, r.CFG, r.Seed, map[bool]string{true: ", quick run", false: ""}[r.Quick])
	how := "trained in " + r.ClassifierTrainTime.Round(time.Second).String()
	if r.ClassifierCached {
		how = "from the cache"
	}
	fmt.Fprintf(&b, "Classifier (CNN on 32x32 downscaled images, %d subgroups, %s): %s on the training emoji as rendered, %s on the %d never-seen held-out emoji images\n\n",
		r.Subgroups, how, pct(r.Classifier.Train), pct(r.Classifier.HeldOut), r.Classifier.HeldOut.Total)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tresult\ttarget\t")
	for _, row := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.figure, row.value, row.target, passFail(row.pass))
	}
	tw.Flush()
	if t := r.Text; t != nil {
		fmt.Fprintf(&b, "\nText conditioning: %d held-in captions from the %d largest subgroups (variants and backgrounds cycled), one image each at %d px, classified by the classifier into one of those subgroups.\n", len(t.Prompts), t.Subgroups, r.NativeSize)
		writePrompts(&b, t.Prompts, "prompted subgroup", "classified as")
	}
	if bg := r.Background; bg != nil {
		fmt.Fprintf(&b, "\nBackground: %d \"<name> on a red background\" prompts; each image's border ring (1/32 of the side) votes pixel by pixel for the nearest of the six data-set backgrounds.\n", len(bg.Prompts))
		writePrompts(&b, bg.Prompts, "wanted", "border")
	}
	if p := r.Personal; p != nil {
		geometry := "centred at full size, as the data set draws them (--centred-views)"
		if p.Jitter > 0 {
			geometry = fmt.Sprintf("shifted by up to %.3g/64 of the side, scaled by %.3g to 1", 3*p.Jitter, 1-0.15*p.Jitter)
		}
		fmt.Fprintf(&b, "\nPersonalization: each held-out emoji trained as a concept (Quick preset at the native size) from augmented views (backgrounds white, blue, green, yellow, black, never red; every second one mirrored; %s); %d generations per prompt; distance = mean Euclidean distance in the classifier's %d penultimate features to the emoji rendered on the background the image shows; the difference's standard error comes from the images' differences pair by pair (image i of both prompts starts from the same noise).\n", geometry, p.Samples, FeatureWidth)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "emoji\tword\tviews\tsteps x px\tdist <concept>\tdist word\tdifference ± SE\tcloser\t<concept> on red\ttrain time\tnote\t")
		for _, c := range p.Concepts {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d x %d\t%.3f\t%.3f\t%+.1f ± %.1f\t%s\t%s\t%s\t%s\t\n", c.Name, c.Word, c.Views, c.Steps, c.Size,
				c.ConceptDist, c.WordDist, c.ConceptDist-c.WordDist, c.GapSE, passFail(c.Closer()), pct(c.Red), c.TrainTime.Round(time.Second), c.Note)
		}
		tw.Flush()
	}
	fmt.Fprintf(&b, "\nOverall: %s (%s)\n", passFail(r.Passed()), r.Elapsed.Round(time.Second))
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func writePrompts(b *strings.Builder, ps []PromptResult, want, got string) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  prompt\t%s\t%s\t\n", want, got)
	for _, p := range ps {
		mark := ""
		if p.Want == p.Got {
			mark = "ok"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Prompt, p.Want, p.Got, mark)
	}
	tw.Flush()
}
