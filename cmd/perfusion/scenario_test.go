package main

import (
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/storage"

	"github.com/perfusion-studio/perfusion"
	"github.com/perfusion-studio/perfusion/internal/golden"
)

// scenarioPrompt is what the scenario types into the prompt field;
// readmePrompt is typed instead for the README's screenshot, which shows
// the default (emoji) model at work.
const (
	scenarioPrompt = "a red apple on a wooden table"
	readmePrompt   = "red apple on a blue background"
)

// envReadmeShot names a file that TestSmokeScenario writes the window's
// screenshot to once the preview shows (`make screenshot` sets it). The
// scenario then runs on the embedded default model instead of the tiny
// golden one.
const envReadmeShot = "PERFUSION_README_SCREENSHOT"

// TestSmokeScenario drives the real window under Xvfb as a person would:
// the app starts on the tiny golden diffusers model (--model), the prompt
// typed with xdotool (the prompt field has the focus at start) brings a
// live preview into the preview area, which was empty, and a photo dragged
// from another program (a GTK drag source, real XDND) and dropped on the
// window reaches the app's drop handler and puts something in front of the
// user (today a message, later the training sheet). Screenshots are kept
// when it fails, in PERFUSION_SCREENSHOT_DIR or $OUT when set.
func TestSmokeScenario(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("smoke test needs X11 under Xvfb; %s has none", runtime.GOOS)
	}
	info, err := perfusion.AppInfo()
	if err != nil {
		t.Fatal(err)
	}
	tools := requireTools(t, "Xvfb", "xwininfo", "import", "xdotool")
	python := findGTKPython(t)
	model := golden.Path(t, "tiny_diffusers")
	display := startXvfb(t, tools["Xvfb"])
	bin := buildBinary(t)
	shots := screenshotDir(t)
	x := xtools{t: t, display: display, xdotool: tools["xdotool"], importTool: tools["import"], dir: shots}

	// The tiny model's VAE halves the size (SD's divides by 8), so the
	// default 256-pixel preview would be a 128x128 latent: slow on a small
	// machine for no gain. The settings file sets a small preview.
	home := t.TempDir()
	prompt, args := scenarioPrompt, []string{"--model", model}
	if os.Getenv(envReadmeShot) != "" {
		// The default model at the app's own preview settings.
		prompt, args, model = readmePrompt, nil, ""
	} else {
		writeSettings(t, home, `{"version": 1, "preview_side": 64, "preview_steps": 4}`)
	}
	app, exited, stderr := startApp(t, bin, display, home, []string{envTestLog + "=1"}, args...)
	events := &appEvents{t: t, out: stderr, exited: exited}

	win := waitForWindow(t, tools["xwininfo"], display, info.Name, exited, stderr)
	start := filepath.Join(shots, "scenario-1-start.png")
	waitForDrawnWindow(t, x.importTool, display, start, win, exited, stderr)
	win = waitForSteadyWindow(t, tools["xwininfo"], display, info.Name, win, exited, stderr)
	area := previewArea(win)
	t.Logf("window at %v, preview area %v", win, area)

	// 1. The window as it first shows: the preview area is in its empty
	// state unless the preview of the empty prompt beat the screenshot
	// (the event is logged before the window shows the frame).
	x.shot(start)
	noPreviewYet := !events.has(func(e event) bool { return e.Event == "preview" })
	startColours, _, err := colourStats(start, area)
	if err != nil {
		t.Fatal(err)
	}
	if noPreviewYet && startColours > maxEmptyColours {
		t.Fatalf("before any preview the preview area has %d colours, want at most %d for its empty state (screenshot %s)",
			startColours, maxEmptyColours, start)
	}
	emptyAtStart := startColours <= maxEmptyColours
	t.Logf("start: %d colours in the preview area (empty state: %v, before any preview: %v)", startColours, emptyAtStart, noPreviewYet)

	// 2. The model loads.
	loaded := events.wait("the model to load", func(e event) bool { return e.Event == "model" })
	if loaded.Error != "" || (model != "" && loaded.Path != model) {
		t.Fatalf("model event %+v, want %s loaded", loaded, model)
	}

	// 3. Type a prompt; its preview appears.
	x.run("type", "--delay", "20", prompt)
	final := events.wait("the final preview of the typed prompt (did the prompt field have the focus?)", func(e event) bool {
		return e.Event == "preview" && e.Prompt == prompt && (e.Final || e.Error != "")
	})
	if final.Error != "" {
		t.Fatalf("preview failed: %s", final.Error)
	}
	previewShot := filepath.Join(shots, "scenario-2-preview.png")
	x.waitFor("the preview in the window", previewShot, func() (bool, string) {
		colours, _, err := colourStats(previewShot, area)
		if err != nil {
			t.Fatal(err)
		}
		changed := pixelChange(t, start, previewShot, area)
		why := fmt.Sprintf("%d colours in the preview area, %.0f%% of it changed since the start", colours, 100*changed)
		// A picture, not an empty state, and not what the area showed at
		// the start (the empty state, or a preview of the empty prompt).
		return colours >= minPreviewColours && changed >= 0.2, why
	}, exited, stderr)
	if path := os.Getenv(envReadmeShot); path != "" {
		readme := filepath.Join(shots, "scenario-readme.png")
		x.steady(readme, area)
		writeWindowShot(t, readme, win, path)
	}

	// 3b. Ctrl-Z with the prompt focused undoes typing there (the Edit
	// menu's library undo must not take the keys): the preview of a shorter
	// prompt follows. Then the preview area settles before the drop.
	seen := len(readEvents(t, stderr.String()))
	x.run("key", "ctrl+z")
	undone := func(e event) bool {
		return e.Event == "preview" && e.Prompt != prompt && strings.HasPrefix(prompt, e.Prompt) && (e.Final || e.Error != "")
	}
	for deadline := time.Now().Add(startupDeadline); !slices.ContainsFunc(readEvents(t, stderr.String())[seen:], undone); {
		if time.Now().After(deadline) {
			t.Fatalf("no preview of a shorter prompt within %v of Ctrl-Z in the prompt; app stderr:\n%s", startupDeadline, stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	x.steady(filepath.Join(shots, "scenario-2b-undo.png"), area)

	// 4. Drop a photo from another program onto the window.
	photo := writePhoto(t, filepath.Join(t.TempDir(), "my cat.jpg"))
	uri := storage.NewFileURI(photo).String()
	src := startDragSource(t, python, display, uri, image.Pt(win.Min.X+20, win.Min.Y+win.Dy()*5/8))
	before := filepath.Join(shots, "scenario-3-before-drop.png")
	x.shot(before)
	from := src.centre()
	to := area.Min.Add(area.Size().Div(2))
	x.run("mousemove", fmt.Sprint(from.X), fmt.Sprint(from.Y))
	x.run("mousedown", "1")
	// GTK starts a drag once the pointer has moved past its threshold
	// with the button held; XDND then follows the pointer.
	for i := 1; i <= 12; i++ {
		p := from.Add(to.Sub(from).Mul(i).Div(12))
		x.run("mousemove", fmt.Sprint(p.X), fmt.Sprint(p.Y))
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	x.run("mouseup", "1")
	drop := events.wait("the drop to reach the window (drag source said: "+src.said()+")", func(e event) bool { return e.Event == "drop" })
	if len(drop.URIs) != 1 || drop.URIs[0] != uri {
		t.Fatalf("dropped %q, want [%s]", drop.URIs, uri)
	}
	afterDrop := filepath.Join(shots, "scenario-4-after-drop.png")
	x.waitFor("the window to react to the drop", afterDrop, func() (bool, string) {
		changed := pixelChange(t, before, afterDrop, area)
		return changed >= 0.1, fmt.Sprintf("%.0f%% of the preview area changed since before the drop", 100*changed)
	}, exited, stderr)

	select {
	case err := <-exited:
		t.Fatalf("app exited before we closed it: %v\nstderr:\n%s", err, stderr)
	default:
	}
	_ = app.Process.Kill()
	<-exited
	if s := stderr.String(); strings.Contains(s, "panic:") || strings.Contains(s, "fatal error") {
		t.Fatalf("app panicked:\n%s", s)
	}
}

// Colour counts that tell the preview area's empty state (a flat panel and
// a line of text) from a picture. A small model's 32x32 preview, enlarged
// by whole pixels, has at most 1024 colours (and a few hundred from the
// panel's edges): twice the empty state's bound tells them apart.
const (
	maxEmptyColours   = 200
	minPreviewColours = 2 * maxEmptyColours
)

// waitForSteadyWindow waits until the window's rectangle, first seen as
// win, stays the same over two looks (a window may be mapped before it
// takes its final size) and returns it.
func waitForSteadyWindow(t *testing.T, xwininfo, display, title string, win image.Rectangle, exited chan error, stderr *syncBuffer) image.Rectangle {
	t.Helper()
	deadline := time.Now().Add(startupDeadline)
	for {
		time.Sleep(300 * time.Millisecond)
		now := waitForWindow(t, xwininfo, display, title, exited, stderr)
		if now == win {
			return win
		}
		if time.Now().After(deadline) {
			t.Fatalf("the window keeps moving: last at %v, then %v", win, now)
		}
		t.Logf("window moved from %v to %v", win, now)
		win = now
	}
}

// previewArea is the middle of the preview panel in a window of the main
// window's layout (library on the left fifth, preview over the composer).
func previewArea(win image.Rectangle) image.Rectangle {
	w, h := win.Dx(), win.Dy()
	return image.Rect(win.Min.X+w*25/100, win.Min.Y+h*8/100, win.Min.X+w*95/100, win.Min.Y+h*48/100)
}

// screenshotDir is where the scenario's screenshots go: the folder the
// environment names, else a temporary one removed when the test passes.
func screenshotDir(t *testing.T) string {
	for _, key := range []string{"PERFUSION_SCREENSHOT_DIR", "OUT"} {
		if dir := os.Getenv(key); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			return dir
		}
	}
	dir, err := os.MkdirTemp("", "perfusion-scenario-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("screenshots kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

// writeSettings writes the app's settings file under home.
func writeSettings(t *testing.T, home, js string) {
	t.Helper()
	dir := filepath.Join(home, ".config", configFolder)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "settings.json"), []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
}

// findGTKPython returns a Python 3 that can import GTK 3 through
// python3-gi (the system one, which a version manager may hide from PATH).
func findGTKPython(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, py := range candidates {
		probe := "import gi; gi.require_version('Gdk', '3.0'); gi.require_version('Gtk', '3.0'); from gi.repository import Gtk"
		if exec.Command(py, "-c", probe).Run() == nil {
			return py
		}
	}
	noXvfb(t, "no python3 with GTK 3 bindings (Debian: apt-get install python3-gi gir1.2-gtk-3.0; `make test` installs them)")
	return ""
}

// writePhoto writes a small JPEG "photo" (a gradient with a disc) to path.
func writePhoto(t *testing.T, path string) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 96, 96))
	for y := range 96 {
		for x := range 96 {
			c := color.RGBA{uint8(2 * x), uint8(2 * y), 160, 255}
			if dx, dy := x-48, y-48; dx*dx+dy*dy < 400 {
				c = color.RGBA{230, 120, 40, 255}
			}
			img.Set(x, y, c)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, img, nil); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeWindowShot crops the window out of a screenshot into path (written
// atomically), for the README.
func writeWindowShot(t *testing.T, shot string, win image.Rectangle, path string) {
	t.Helper()
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	sub, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	if !ok {
		t.Fatalf("screenshot %s: %T cannot be cropped", shot, img)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".screenshot-*.png")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(tmp, sub.SubImage(win)); err != nil {
		tmp.Close()
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
	t.Logf("window screenshot written to %s", path)
}

// pixelChange is the share of pixels in r that differ between two
// screenshots.
func pixelChange(t *testing.T, a, b string, r image.Rectangle) float64 {
	t.Helper()
	imgA, imgB := readPNG(t, a), readPNG(t, b)
	r = r.Intersect(imgA.Bounds()).Intersect(imgB.Bounds())
	if r.Empty() {
		t.Fatalf("area %v lies outside the screenshots", r)
	}
	changed := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if imgA.At(x, y) != imgB.At(x, y) {
				changed++
			}
		}
	}
	return float64(changed) / float64(r.Dx()*r.Dy())
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode screenshot %s: %v", path, err)
	}
	return img
}
