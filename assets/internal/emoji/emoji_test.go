package emoji

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const testSnippet = `# group: Smileys & Emotion

# subgroup: face-smiling
1F600                                                  ; fully-qualified     # 😀 E1.0 grinning face
263A FE0F                                              ; fully-qualified     # ☺️ E0.6 smiling face
263A                                                   ; unqualified         # ☺ E0.6 smiling face

# group: People & Body
# subgroup: hand-fingers-open
1F44B                                                  ; fully-qualified     # 👋 E0.6 waving hand
1F44B 1F3FB                                            ; fully-qualified     # 👋🏻 E1.0 waving hand: light skin tone

# group: Component
# subgroup: skin-tone
1F3FB                                                  ; component           # 🏻 E1.0 light skin tone
`

func TestParseTest(t *testing.T) {
	list, err := ParseTest(strings.NewReader(testSnippet))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.String()+"|"+e.Name+"|"+e.Group+"|"+e.Subgroup)
	}
	want := []string{
		"1F600|grinning face|Smileys & Emotion|face-smiling",
		"263A FE0F|smiling face|Smileys & Emotion|face-smiling",
		"1F44B|waving hand|People & Body|hand-fingers-open",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if _, err := ParseTest(strings.NewReader("1F600 fully-qualified\n")); err == nil {
		t.Error("a line without ';' and '#' was accepted")
	}
	if _, err := ParseTest(strings.NewReader("# nothing\n")); err == nil {
		t.Error("a file without emoji was accepted")
	}
}

func TestParseAnnotations(t *testing.T) {
	const doc = `<ldml><annotations>
<annotation cp="😀">face | grin | Grinning Face</annotation>
<annotation cp="😀" type="tts">grinning face</annotation>
<annotation cp="☺">face | outlined | relaxed | smile | smiling face</annotation>
</annotations></ldml>`
	m, err := ParseAnnotations(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	list, _ := ParseTest(strings.NewReader(testSnippet))
	AddKeywords(list, m)
	if got := list[0].Keywords; !slices.Equal(got, []string{"face", "grin"}) {
		t.Errorf("grinning face keywords %q", got)
	}
	// CLDR keys have no FE0F; the emoji does.
	if got := list[1].Keywords; !slices.Equal(got, []string{"face", "outlined", "relaxed", "smile"}) {
		t.Errorf("smiling face keywords %q", got)
	}
	if list[2].Keywords != nil {
		t.Errorf("waving hand has keywords %q without an annotation", list[2].Keywords)
	}
}

func TestCaption(t *testing.T) {
	e := Emoji{Name: "flag: japan", Group: "Flags", Subgroup: "country-flag", Keywords: []string{"flag", "japan", "Nippon"}}
	bg := Backgrounds()[2]
	want := []string{
		"flag japan, country flag, on a red background",
		"flag japan on a red background",
		"flag japan, flag, japan, flags, on a red background",
		"flag japan, country flag",
	}
	for v, w := range want {
		if got := Caption(e, bg, v); got != w {
			t.Errorf("variant %d: %q, want %q", v, got, w)
		}
	}
	if got := Words("Smileys & Emotion"); got != "smileys and emotion" {
		t.Errorf("Words: %q", got)
	}
}

// The tests below read the Debian package files. CI does not install
// fonts-noto-color-emoji, unicode-data and unicode-cldr-core (only `make
// default-model` does), so they skip where the files are absent, CI or not.
func packageFiles(t *testing.T) Paths {
	t.Helper()
	p := DefaultPaths()
	if miss := p.Missing(); len(miss) > 0 {
		t.Skipf("skipped: %s absent (install fonts-noto-color-emoji, unicode-data and unicode-cldr-core, e.g. with make default-model)", strings.Join(miss, ", "))
	}
	return p
}

func TestHeldOutInPackageFiles(t *testing.T) {
	p := packageFiles(t)
	list, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	byRunes := map[string]Emoji{}
	for _, e := range list {
		byRunes[string(e.Runes)] = e
	}
	held := map[string]bool{}
	subgroups := map[string]bool{}
	for _, c := range HeldOut() {
		e, ok := byRunes[string(c.Runes)]
		if !ok || e.Name != c.Name {
			t.Errorf("held-out %q (%s) not in emoji-test.txt under that name (found %q)", c.Name, codepoints(c.Runes), e.Name)
		}
		held[string(c.Runes)] = true
		subgroups[e.Subgroup] = true
	}
	if n := len(HeldOut()); n < 20 || len(subgroups) < 5 {
		t.Errorf("%d held-out emoji in %d subgroups, want >= 20 in >= 5", n, len(subgroups))
	}
	// Each superordinate word is taught by training captions of other emoji.
	for _, c := range HeldOut() {
		re := regexp.MustCompile(`\b` + c.Word + `\b`)
		n := 0
		for _, e := range list {
			if !held[string(e.Runes)] && re.MatchString(Caption(e, Backgrounds()[0], 0)+" "+Caption(e, Backgrounds()[0], 2)) {
				n++
			}
		}
		if n < 1 {
			t.Errorf("held-out %q: its word %q is in the captions of %d training emoji, want >= 1", c.Name, c.Word, n)
		}
	}
}

func TestRenderPackageFont(t *testing.T) {
	p := packageFiles(t)
	f, err := OpenFont(p.Font)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range [][]rune{
		{0x1F431},                          // cat face
		{0x2764, 0xFE0F},                   // red heart
		{0x1F469, 0x200D, 0x1F680},         // woman astronaut (ZWJ)
		{0x1F1EF, 0x1F1F5},                 // flag: Japan (regional indicators)
		{0x1F3F3, 0xFE0F, 0x200D, 0x1F308}, // rainbow flag
	} {
		bm, err := f.Bitmap(rs)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{64, 32} {
			g := Scale(bm, size)
			if a := g.NRGBAAt(0, 0).A; a != 0 {
				t.Errorf("%s at %d: corner alpha %d, want a transparent margin", codepoints(rs), size, a)
			}
			opaque := 0
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					if g.NRGBAAt(x, y).A > 128 {
						opaque++
					}
				}
			}
			if opaque < size*size/8 {
				t.Errorf("%s at %d: %d opaque pixels, want a drawn glyph", codepoints(rs), size, opaque)
			}
			bg := Backgrounds()[2]
			img := Composite(g, bg.Color)
			if c := img.RGBAAt(0, 0); c != bg.Color {
				t.Errorf("%s at %d: corner %v, want the background %v", codepoints(rs), size, c, bg.Color)
			}
			chw := CHW(img)
			if len(chw) != 3*size*size || chw[0] != float32(bg.Color.R)/127.5-1 {
				t.Errorf("%s: CHW has %d values, first %v", codepoints(rs), len(chw), chw[0])
			}
		}
	}
	if _, err := f.Bitmap([]rune{'a', 'b'}); err == nil {
		t.Error("two letters shaped to one emoji glyph")
	}
}

func TestBuildDeterministic(t *testing.T) {
	p := packageFiles(t)
	if testing.Short() {
		t.Skip("skipped in -short: renders every emoji twice")
	}
	a, err := Build(context.Background(), p, 32, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(context.Background(), p, 32, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Train) < 1000 || len(a.Train) != len(b.Train) {
		t.Fatalf("train sizes %d and %d", len(a.Train), len(b.Train))
	}
	for i := range a.Train {
		if !slices.Equal(a.Train[i].Glyph.Pix, b.Train[i].Glyph.Pix) || a.Train[i].Emoji.Name != b.Train[i].Emoji.Name {
			t.Fatalf("item %d differs between two builds", i)
		}
	}
	names, _ := a.Subgroups()
	if len(names) < 20 {
		t.Errorf("%d subgroups, want >= 20", len(names))
	}
}
