// Package emoji builds the default model's training data from Debian
// packages: the Noto Color Emoji bitmaps (fonts-noto-color-emoji, CBDT/CBLC
// tables read with github.com/go-text/typesetting), the emoji names, groups
// and subgroups of Unicode's emoji-test.txt (unicode-data, UTS #51) and the
// English CLDR annotation keywords (unicode-cldr-core).
//
// Everything is deterministic: the same files give the same emoji list,
// images and captions. The app never imports this package.
package emoji

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Default paths of the Debian package files.
const (
	FontPath        = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
	TestFilePath    = "/usr/share/unicode/emoji/emoji-test.txt"
	AnnotationsPath = "/usr/share/unicode/cldr/common/annotations/en.xml"
	DerivedPath     = "/usr/share/unicode/cldr/common/annotationsDerived/en.xml"
)

// Paths names the input files; DefaultPaths gives the Debian locations.
type Paths struct {
	Font, TestFile, Annotations, Derived string
}

// DefaultPaths returns the files the Debian packages install.
func DefaultPaths() Paths {
	return Paths{Font: FontPath, TestFile: TestFilePath, Annotations: AnnotationsPath, Derived: DerivedPath}
}

// Missing lists the files of p that do not exist (empty Derived is allowed).
func (p Paths) Missing() []string {
	var out []string
	for _, f := range []string{p.Font, p.TestFile, p.Annotations, p.Derived} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			out = append(out, f)
		}
	}
	return out
}

// Emoji is one fully-qualified emoji of emoji-test.txt.
type Emoji struct {
	Runes    []rune   // code points, FE0F included
	Name     string   // CLDR short name, lower case ("grinning face")
	Group    string   // "Smileys & Emotion"
	Subgroup string   // "face-smiling"
	Keywords []string // CLDR annotation keywords, lower case, name excluded
}

// String is the emoji's code points, as emoji-test.txt writes them.
func (e Emoji) String() string { return codepoints(e.Runes) }

func codepoints(rs []rune) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%04X", r)
	}
	return strings.Join(parts, " ")
}

// skinTone reports whether r is a Fitzpatrick modifier (U+1F3FB..1F3FF).
func skinTone(r rune) bool { return r >= 0x1F3FB && r <= 0x1F3FF }

// ParseTest reads emoji-test.txt and returns its fully-qualified emoji in
// file order, leaving out the Component group and every sequence with a
// skin-tone modifier (they repeat their base emoji's name and caption).
func ParseTest(r io.Reader) ([]Emoji, error) {
	sc := bufio.NewScanner(r)
	var out []Emoji
	var group, sub string
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "# group:"):
			group = strings.TrimSpace(strings.TrimPrefix(line, "# group:"))
			continue
		case strings.HasPrefix(line, "# subgroup:"):
			sub = strings.TrimSpace(strings.TrimPrefix(line, "# subgroup:"))
			continue
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		}
		semi, hash := strings.Index(line, ";"), strings.Index(line, "#")
		if semi < 0 || hash < semi {
			return nil, fmt.Errorf("emoji: emoji-test.txt line %d: want \"code points ; status # emoji name\", got %q", n, line)
		}
		if strings.TrimSpace(line[semi+1:hash]) != "fully-qualified" || group == "Component" {
			continue
		}
		var rs []rune
		tone := false
		for _, f := range strings.Fields(line[:semi]) {
			v, err := strconv.ParseUint(f, 16, 32)
			if err != nil {
				return nil, fmt.Errorf("emoji: emoji-test.txt line %d: bad code point %q", n, f)
			}
			rs = append(rs, rune(v))
			tone = tone || skinTone(rune(v))
		}
		if tone {
			continue
		}
		// comment: "<emoji> E<version> <name>"
		f := strings.Fields(line[hash+1:])
		if len(f) < 3 || !strings.HasPrefix(f[1], "E") {
			return nil, fmt.Errorf("emoji: emoji-test.txt line %d: no name in %q", n, line[hash:])
		}
		out = append(out, Emoji{Runes: rs, Name: strings.ToLower(strings.Join(f[2:], " ")), Group: group, Subgroup: sub})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("emoji: read emoji-test.txt: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("emoji: emoji-test.txt lists no fully-qualified emoji")
	}
	return out, nil
}

// ParseAnnotations reads a CLDR annotations XML file (annotations/en.xml
// or annotationsDerived/en.xml) into emoji (without FE0F) -> keywords, from
// the non-tts entries.
func ParseAnnotations(r io.Reader) (map[string][]string, error) {
	var doc struct {
		Items []struct {
			CP   string `xml:"cp,attr"`
			Type string `xml:"type,attr"`
			Text string `xml:",chardata"`
		} `xml:"annotations>annotation"`
	}
	if err := xml.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("emoji: annotations: %w", err)
	}
	out := map[string][]string{}
	for _, a := range doc.Items {
		if a.Type == "tts" {
			continue
		}
		var kw []string
		for _, k := range strings.Split(a.Text, "|") {
			if k = strings.ToLower(strings.TrimSpace(k)); k != "" {
				kw = append(kw, k)
			}
		}
		out[stripVS(a.CP)] = kw
	}
	return out, nil
}

// stripVS drops U+FE0F (CLDR keys omit it).
func stripVS(s string) string { return strings.ReplaceAll(s, "\uFE0F", "") }

// AddKeywords sets each emoji's Keywords from the annotation maps (the
// first map that knows it), leaving out its own name.
func AddKeywords(list []Emoji, maps ...map[string][]string) {
	for i := range list {
		key := stripVS(string(list[i].Runes))
		for _, m := range maps {
			kw, ok := m[key]
			if !ok {
				continue
			}
			list[i].Keywords = nil
			for _, k := range kw {
				if k != list[i].Name {
					list[i].Keywords = append(list[i].Keywords, k)
				}
			}
			break
		}
	}
}

// Load reads the emoji list of p with keywords (not the font).
func Load(p Paths) ([]Emoji, error) {
	f, err := os.Open(p.TestFile)
	if err != nil {
		return nil, fmt.Errorf("emoji: %w (install the Debian package unicode-data)", err)
	}
	defer f.Close()
	list, err := ParseTest(f)
	if err != nil {
		return nil, err
	}
	var maps []map[string][]string
	for _, path := range []string{p.Annotations, p.Derived} {
		if path == "" {
			continue
		}
		af, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("emoji: %w (install the Debian package unicode-cldr-core)", err)
		}
		m, err := ParseAnnotations(af)
		af.Close()
		if err != nil {
			return nil, fmt.Errorf("emoji: %s: %w", path, err)
		}
		maps = append(maps, m)
	}
	AddKeywords(list, maps...)
	return list, nil
}
