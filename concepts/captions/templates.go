package captions

import "strings"

// templates compose one caption each. They follow the shapes of real
// captions: LAION alt texts (photo captions, product shots, short labels)
// and Stable Diffusion prompts (a medium, a subject, comma-separated
// modifiers).
var templates = []func(r *rng) string{
	// a photo of a small red fox sitting in a forest at sunset
	func(r *rng) string {
		return join(r.pick(styles)+" of", subject(r, 60, 40), maybe(r, 60, r.pick(actions)), r.pick(places), maybe(r, 40, r.pick(lighting)))
	},
	// an oil painting of a knight riding a horse, highly detailed, trending on artstation
	func(r *rng) string {
		return join(r.pick(styles)+" of", person(r), r.pick(actions), maybe(r, 50, r.pick(places))) + modifiers(r, 1+r.intn(4))
	},
	// close-up of a ceramic teapot on a marble background
	func(r *rng) string {
		return join(r.pick(compositions)+" of", subject(r, 50, 60), "on", r.pick(backgrounds), "background")
	},
	// three puppies playing in a garden
	func(r *rng) string {
		n := r.pick(animals)
		if r.chance(50) {
			n = r.pick(objects)
		}
		return join(r.pick(quantities), maybe(r, 40, r.pick(adjectives)), plural(n), maybe(r, 50, r.pick(actions)), r.pick(places))
	},
	// portrait of an old woman wearing a hat, rim lighting, 35mm film
	func(r *rng) string {
		return join("portrait of", person(r), maybe(r, 60, r.pick(actions)), maybe(r, 50, r.pick(lighting))) + modifiers(r, r.intn(3))
	},
	// vintage leather boot, product photo, white background
	func(r *rng) string {
		return join(maybe(r, 50, r.pick(adjectives)), maybe(r, 60, r.pick(colours)), r.pick(objects)) + ", " + r.pick(products) +
			maybe(r, 50, ", "+strings.TrimPrefix(strings.TrimPrefix(r.pick(backgrounds), "a "), "an ")+" background")
	},
	// a cat and a dog sitting next to each other on a sofa
	func(r *rng) string {
		return join(subject(r, 30, 20), "and", subject(r, 30, 20), maybe(r, 50, r.pick(actions)), maybe(r, 60, "next to each other"), r.pick(places))
	},
	// tokyo at night, aerial view, cinematic
	func(r *rng) string {
		p := r.pick(places)
		for _, pre := range []string{"in the ", "in a ", "in an ", "in ", "on a ", "on an ", "on the ", "at a ", "by a ", "next to a "} {
			p = strings.TrimPrefix(p, pre)
		}
		return join(p, r.pick(lighting)) + ", " + r.pick(compositions) + modifiers(r, r.intn(3))
	},
	// the teapot is blue and sits on a wooden table
	func(r *rng) string {
		o := r.pick(objects)
		return join("the", o, "is", r.pick(colours), "and", r.pick([]string{"sits on a wooden table", "stands in the corner", "lies on the floor", "hangs on the wall", "is placed on a shelf", "rests in the sun"}))
	},
	// a dog
	func(r *rng) string { return subject(r, 30, 30) },
	// a giraffe in the style of van gogh
	func(r *rng) string {
		return join(subject(r, 40, 30), r.pick([]string{"made of", "covered in", "decorated with", "surrounded by"}), r.pick([]string{
			"flowers", "lego bricks", "ice", "gold", "paper", "clouds", "candy", "crystals", "leaves", "feathers", "yarn", "glass", "fire", "water", "moss", "stars",
		})) + modifiers(r, r.intn(3))
	},
	// photo of a chef cooking dinner in a kitchen. she is smiling.
	func(r *rng) string {
		return join("photo of", person(r), r.pick(actions), r.pick(places)) + ". " +
			join(r.pick([]string{"the", "a"}), r.pick(colours), r.pick(objects), "can be seen", r.pick([]string{"in the background", "on the left", "on the right", "in the foreground", "behind them"})) + "."
	},
}

// subject is an animal, object or person with optional adjective and colour.
func subject(r *rng, pAdj, pColour int) string {
	var noun string
	switch r.intn(3) {
	case 0:
		noun = r.pick(animals)
	case 1:
		noun = r.pick(objects)
	default:
		noun = r.pick(people)
	}
	return article(join(maybe(r, pAdj, r.pick(adjectives)), maybe(r, pColour, r.pick(colours)), noun))
}

// person is a person, sometimes described.
func person(r *rng) string {
	return article(join(maybe(r, 40, r.pick(adjectives)), r.pick(people), maybe(r, 30, "in a "+r.pick(colours)+" "+r.pick([]string{"dress", "coat", "shirt", "jacket", "sweater", "hoodie", "suit", "robe"}))))
}

// modifiers is ", m1, m2, …" with n distinct style modifiers.
func modifiers(r *rng, n int) string {
	var b strings.Builder
	used := map[string]bool{}
	for range n {
		m := r.pick(styleSuffixes)
		if !used[m] {
			used[m] = true
			b.WriteString(", " + m)
		}
	}
	return b.String()
}

// maybe returns s with probability p/100, else "". It always draws, so
// that the stream of draws does not depend on earlier outcomes' text.
func maybe(r *rng, p int, s string) string {
	if r.chance(p) {
		return s
	}
	return ""
}

// join joins the non-empty parts with single spaces.
func join(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p)
	}
	return b.String()
}
