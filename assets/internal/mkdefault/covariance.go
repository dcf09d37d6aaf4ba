package main

import (
	"context"
	"fmt"
	"time"

	"github.com/perfusion-studio/perfusion/concepts/captions"
	"github.com/perfusion-studio/perfusion/concepts/covariance"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// writeCovariance computes C, the covariance of the text encodings that
// Perfusion's gate needs, for the model folder dir as the app asks for it
// (the built-in caption corpus, the same cache key) and writes it into the
// folder as covariance.ShippedFile, so the app's first concept does not
// wait for it. It then checks that the app's path reads the file back
// without computing.
func writeCovariance(ctx context.Context, dir string, logf func(string, ...any)) error {
	p, err := pipeline.Load(ctx, dir, pipeline.LoadOptions{})
	if err != nil {
		return fmt.Errorf("covariance: load %s: %w", dir, err)
	}
	caps := captions.Default()
	start, tenth := time.Now(), -1
	path, cv, err := covariance.WriteShipped(ctx, p, caps, covariance.Options{Progress: func(pr covariance.Progress) {
		if t := 10 * pr.Done / max(pr.Total, 1); t != tenth {
			tenth = t
			logf("covariance: %d/%d captions, ETA %s", pr.Done, pr.Total, pr.ETA.Round(time.Second))
		}
	}})
	if err != nil {
		return err
	}
	computed := false
	back, st, err := covariance.ForPipeline(ctx, p, caps, "", covariance.Options{Progress: func(covariance.Progress) { computed = true }})
	switch {
	case err != nil:
		return fmt.Errorf("covariance: read back %s: %w", path, err)
	case computed || !st.Shipped || back.Key != cv.Key:
		return fmt.Errorf("covariance: the app would not use %s (read back: %+v)", path, st)
	}
	logf("wrote %s (key %s): %s, in %s", path, cv.Key, cv.Summary(), time.Since(start).Round(time.Millisecond))
	return nil
}
