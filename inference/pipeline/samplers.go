package pipeline

import (
	"fmt"
	"strings"

	"github.com/perfusion-studio/perfusion/inference/sampler"
)

// samplerLabels are the AUTOMATIC1111 web UI's display names of the
// samplers (what its PNG "parameters" say after "Sampler:"). The web UI
// names Euler on Karras sigmas "Euler" with "Schedule type: Karras" since
// v1.9; the older combined form is used here for all Karras variants.
var samplerLabels = map[string]string{
	"ddim":            "DDIM",
	"euler":           "Euler",
	"euler_a":         "Euler a",
	"euler_karras":    "Euler Karras",
	"dpmpp_2m":        "DPM++ 2M",
	"dpmpp_2m_karras": "DPM++ 2M Karras",
	"lcm":             "LCM",
}

// SamplerLabel is the display name of a sampler ("dpmpp_2m_karras" ->
// "DPM++ 2M Karras"); an unknown name is returned unchanged.
func SamplerLabel(name string) string {
	if l, ok := samplerLabels[name]; ok {
		return l
	}
	return name
}

// ParseSampler resolves a sampler name or display label, in any case
// ("Euler a", "euler_a"), to its name in sampler.Names().
func ParseSampler(s string) (string, error) {
	want := strings.TrimSpace(s)
	for _, n := range sampler.Names() {
		if strings.EqualFold(want, n) || strings.EqualFold(want, SamplerLabel(n)) {
			return n, nil
		}
	}
	var valid []string
	for _, n := range sampler.Names() {
		valid = append(valid, fmt.Sprintf("%s (%q)", n, SamplerLabel(n)))
	}
	return "", fmt.Errorf("pipeline: unknown sampler %q; valid: %s", s, strings.Join(valid, ", "))
}
