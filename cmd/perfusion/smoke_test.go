package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perfusion-studio/perfusion"
	"github.com/perfusion-studio/perfusion/inference/pipeline"
)

// startupDeadline bounds each wait for Xvfb or the app; it is a deadline,
// not a timing assertion, and is generous for a cold, busy 2-core machine.
const startupDeadline = 60 * time.Second

// TestSmokeRealWindow builds the binary, opens the app on a private Xvfb
// display, waits for its window, screenshots it with ImageMagick's import
// (Fyne's own capture is blank under Xvfb) and checks the window is drawn and
// the process neither panicked nor exited. It skips only when Xvfb and the X
// tools are not available, and fails then under CI=true.
func TestSmokeRealWindow(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("smoke test needs X11 under Xvfb; %s has none", runtime.GOOS)
	}
	info, err := perfusion.AppInfo()
	if err != nil {
		t.Fatal(err)
	}
	tools := requireTools(t, "Xvfb", "xwininfo", "import")
	display := startXvfb(t, tools["Xvfb"])
	bin := buildBinary(t)

	// The built binary reports the embedded version.
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || strings.TrimSpace(string(out)) != info.String() {
		t.Fatalf("%s --version = %q, %v; want %q", bin, out, err, info.String())
	}

	// Without --model the app starts on the default model, installed in
	// the (temporary) home's cache folder.
	home := t.TempDir()
	app, exited, stderr := startApp(t, bin, display, home, []string{envTestLog + "=1"})
	events := &appEvents{t: t, out: stderr, exited: exited}
	win := waitForWindow(t, tools["xwininfo"], display, info.Name, exited, stderr)
	t.Logf("window %q at %v", info.Name, win)

	shot := filepath.Join(t.TempDir(), "perfusion-smoke.png")
	distinct := waitForDrawnWindow(t, tools["import"], display, shot, win, exited, stderr)
	t.Logf("screenshot %s: %d distinct colours inside the window", shot, distinct)
	if dir := os.Getenv("PERFUSION_SCREENSHOT_DIR"); dir != "" {
		copyFile(t, shot, filepath.Join(dir, "perfusion-smoke.png"))
	}

	loaded := events.wait("the default model to load", func(e event) bool { return e.Event == "model" })
	if loaded.Error != "" || !strings.HasPrefix(loaded.Path, filepath.Join(home, ".cache", "perfusion", "defaultmodel")+string(filepath.Separator)) {
		t.Fatalf("model event %+v, want the default model loaded from the cache folder", loaded)
	}
	events.wait("the status to say the default model is in use", func(e event) bool {
		return e.Event == "status" && strings.HasPrefix(e.Text, "Default model")
	})
	first := events.wait("the first preview", func(e event) bool { return e.Event == "preview" && (e.Final || e.Error != "") })
	dm, err := pipeline.Load(context.Background(), loaded.Path, pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := dm.NativeSize(); first.Error != "" || first.Width != n || first.Height != n {
		t.Fatalf("first preview %+v, want %dx%d (the default model's native size)", first, n, n)
	}

	select {
	case err := <-exited:
		t.Fatalf("app exited before we closed it: %v\nstderr:\n%s", err, stderr)
	default:
	}
	_ = app.Process.Kill()
	<-exited
	if s := stderr.String(); strings.Contains(s, "panic:") || strings.Contains(s, "fatal error") {
		t.Fatalf("app panicked:\n%s", s)
	} else if s != "" {
		t.Logf("app stderr:\n%s", s)
	}
}

// requireTools finds each command on PATH; without them it skips, or fails
// under CI=true.
func requireTools(t *testing.T, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	var missing []string
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
			continue
		}
		paths[name] = p
	}
	if len(missing) > 0 {
		noXvfb(t, fmt.Sprintf("missing %s (Debian: apt-get install xvfb x11-utils imagemagick; `make test` installs them)",
			strings.Join(missing, ", ")))
	}
	return paths
}

// noXvfb skips the test, or fails it under CI where the display is required.
func noXvfb(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("smoke test cannot run under CI: %s", why)
	}
	t.Skipf("smoke test skipped: %s", why)
}

// startXvfb starts a private X server on a free display and returns ":N".
func startXvfb(t *testing.T, xvfb string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var errBuf syncBuffer
	cmd := exec.Command(xvfb, "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset")
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		w.Close()
		noXvfb(t, fmt.Sprintf("cannot start Xvfb: %v", err))
	}
	w.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if _, err := strconv.Atoi(s); err != nil {
			noXvfb(t, fmt.Sprintf("Xvfb gave no display number (%q); its stderr:\n%s", s, errBuf.String()))
		}
		return ":" + s
	case <-time.After(startupDeadline):
		noXvfb(t, fmt.Sprintf("Xvfb did not report a display within %v; its stderr:\n%s", startupDeadline, errBuf.String()))
	}
	return ""
}

// startApp runs the GUI with args on display with a clean home, plus
// extraEnv ("KEY=value"). exited receives Wait's result once the process
// ends.
func startApp(t *testing.T, bin, display, home string, extraEnv []string, args ...string) (*exec.Cmd, chan error, *syncBuffer) {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		switch {
		case key == "DISPLAY", key == "WAYLAND_DISPLAY", key == "XAUTHORITY", key == "HOME",
			key == "LANG", key == "LANGUAGE", key == "GSETTINGS_BACKEND", key == "NO_AT_BRIDGE",
			key == "DBUS_SESSION_BUS_ADDRESS", strings.HasPrefix(key, "LC_"), strings.HasPrefix(key, "XDG_"):
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "DISPLAY="+display, "HOME="+home, "LANG=C.UTF-8", "LANGUAGE=en_US",
		"GSETTINGS_BACKEND=memory", "NO_AT_BRIDGE=1")
	env = append(env, extraEnv...)

	stderr := new(syncBuffer)
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = home
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start app: %v", err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		exited <- cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // fails harmlessly if it already exited
		<-done
	})
	return cmd, exited, stderr
}

// xwininfo -root -tree lines look like
//
//	0x400007 "Perfusion Studio": ("perfusion" "perfusion")  1200x780+0+0  +0+0
//
// the last pair being the absolute position.
var geometry = regexp.MustCompile(`(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)\s*$`)

// waitForWindow polls the window tree until a window whose title starts
// with title appears and returns its rectangle in root coordinates (the
// largest, if several).
func waitForWindow(t *testing.T, xwininfo, display, title string, exited chan error, stderr *syncBuffer) image.Rectangle {
	t.Helper()
	deadline := time.Now().Add(startupDeadline)
	var last string
	for {
		out, err := exec.Command(xwininfo, "-display", display, "-root", "-tree").CombinedOutput()
		last = string(out)
		var best image.Rectangle
		if err == nil {
			for _, line := range strings.Split(last, "\n") {
				if !strings.Contains(line, `"`+title) {
					continue
				}
				m := geometry.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				n := make([]int, 4)
				for i := range n {
					n[i], _ = strconv.Atoi(m[i+1])
				}
				r := image.Rect(n[2], n[3], n[2]+n[0], n[3]+n[1])
				if r.Dx()*r.Dy() > best.Dx()*best.Dy() {
					best = r
				}
			}
		}
		if best.Dx() > 100 && best.Dy() > 100 {
			return best
		}
		select {
		case err := <-exited:
			t.Fatalf("app exited before its window appeared: %v\nstderr:\n%s", err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no window %q within %v; last window tree:\n%s\napp stderr:\n%s", title, startupDeadline, last, stderr)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitForDrawnWindow screenshots the root window into path until the
// window's rectangle shows a drawn UI (many colours, not one flat fill) and
// returns the number of distinct colours there.
func waitForDrawnWindow(t *testing.T, importTool, display, path string, win image.Rectangle, exited chan error, stderr *syncBuffer) int {
	t.Helper()
	deadline := time.Now().Add(startupDeadline)
	for {
		out, err := exec.Command(importTool, "-display", display, "-window", "root", path).CombinedOutput()
		if err != nil {
			t.Fatalf("import -window root: %v\n%s", err, out)
		}
		distinct, dominant, err := colourStats(path, win)
		if err != nil {
			t.Fatal(err)
		}
		if distinct >= 16 && dominant < 0.98 {
			return distinct
		}
		select {
		case err := <-exited:
			t.Fatalf("app exited before drawing: %v\nstderr:\n%s", err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("window still blank after %v: %d distinct colours, the commonest covers %.1f%% (screenshot %s)\napp stderr:\n%s",
				startupDeadline, distinct, 100*dominant, path, stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// colourStats reads a PNG and, inside win, counts distinct colours and the
// share of pixels taken by the commonest one.
func colourStats(path string, win image.Rectangle) (distinct int, dominant float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return 0, 0, fmt.Errorf("decode screenshot %s: %w", path, err)
	}
	r := win.Intersect(img.Bounds())
	if r.Empty() {
		return 0, 0, fmt.Errorf("window %v lies outside the screenshot %v", win, img.Bounds())
	}
	counts := map[[4]uint32]int{}
	most := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, ca := img.At(x, y).RGBA()
			k := [4]uint32{cr, cg, cb, ca}
			counts[k]++
			most = max(most, counts[k])
		}
	}
	return len(counts), float64(most) / float64(r.Dx()*r.Dy()), nil
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot copied to %s", to)
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
