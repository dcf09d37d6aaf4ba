package main

import (
	"bufio"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// xtools runs xdotool and import on the test's display.
type xtools struct {
	t                   *testing.T
	display             string
	xdotool, importTool string
	dir                 string
}

func (x xtools) run(args ...string) {
	x.t.Helper()
	cmd := exec.Command(x.xdotool, args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+x.display)
	if out, err := cmd.CombinedOutput(); err != nil {
		x.t.Fatalf("xdotool %q: %v\n%s", args, err, out)
	}
}

// shot screenshots the whole screen into path.
func (x xtools) shot(path string) {
	x.t.Helper()
	if out, err := exec.Command(x.importTool, "-display", x.display, "-window", "root", path).CombinedOutput(); err != nil {
		x.t.Fatalf("import -window root: %v\n%s", err, out)
	}
}

// steady screenshots into path until area looks the same in two
// screenshots in a row (the window has drawn what it was sent), for at
// most startupDeadline.
func (x xtools) steady(path string, area image.Rectangle) {
	x.t.Helper()
	prev := path + ".prev.png"
	defer os.Remove(prev)
	x.shot(prev)
	deadline := time.Now().Add(startupDeadline)
	for {
		time.Sleep(300 * time.Millisecond)
		x.shot(path)
		if pixelChange(x.t, prev, path, area) == 0 {
			return
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("the window is still changing after %v (screenshot %s)", startupDeadline, path)
		}
		if err := os.Rename(path, prev); err != nil {
			x.t.Fatal(err)
		}
	}
}

// waitFor screenshots into path until ok says the screen shows what is
// awaited, failing after startupDeadline with ok's last explanation.
func (x xtools) waitFor(what, path string, ok func() (bool, string), exited chan error, stderr *syncBuffer) {
	x.t.Helper()
	deadline := time.Now().Add(startupDeadline)
	for {
		x.shot(path)
		done, why := ok()
		if done {
			x.t.Logf("%s: %s", what, why)
			return
		}
		select {
		case err := <-exited:
			x.t.Fatalf("app exited while waiting for %s: %v\nstderr:\n%s", what, err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("no %s within %v: %s (screenshot %s)\napp stderr:\n%s", what, startupDeadline, why, path, stderr)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// appEvents reads the event lines the app writes to stderr.
type appEvents struct {
	t      *testing.T
	out    *syncBuffer
	exited chan error
}

// has reports whether an event so far matches.
func (a *appEvents) has(match func(event) bool) bool {
	for _, e := range readEvents(a.t, a.out.String()) {
		if match(e) {
			return true
		}
	}
	return false
}

// wait returns the first event that matches, failing after startupDeadline.
func (a *appEvents) wait(what string, match func(event) bool) event {
	a.t.Helper()
	deadline := time.Now().Add(startupDeadline)
	for {
		for _, e := range readEvents(a.t, a.out.String()) {
			if match(e) {
				return e
			}
		}
		select {
		case err := <-a.exited:
			a.t.Fatalf("app exited while waiting for %s: %v\nstderr:\n%s", what, err, a.out)
		default:
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("no sign of %s within %v; app stderr:\n%s", what, startupDeadline, a.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dragSource is the GTK drag source window (testdata/dragsource.py).
type dragSource struct {
	rect image.Rectangle
	out  *syncBuffer
}

func (d *dragSource) centre() image.Point { return d.rect.Min.Add(d.rect.Size().Div(2)) }

// said is what the drag source printed, on one line.
func (d *dragSource) said() string { return strings.Join(strings.Fields(d.out.String()), " ") }

// startDragSource opens the drag source offering uri at root position at
// and waits until it is shown.
func startDragSource(t *testing.T, python, display, uri string, at image.Point) *dragSource {
	t.Helper()
	cmd := exec.Command(python, filepath.Join("testdata", "dragsource.py"), uri, fmt.Sprint(at.X), fmt.Sprint(at.Y))
	cmd.Env = append(os.Environ(), "DISPLAY="+display, "GSETTINGS_BACKEND=memory", "NO_AT_BRIDGE=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut := new(syncBuffer)
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("start drag source: %v", err)
	}
	d := &dragSource{rect: image.Rect(at.X, at.Y, at.X+140, at.Y+100), out: new(syncBuffer)}
	ready := make(chan struct{})
	var shown sync.Once
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(d.out, sc.Text())
			if sc.Text() == "ready" {
				shown.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	select {
	case <-ready:
	case <-time.After(startupDeadline):
		t.Fatalf("drag source not shown within %v; its stderr:\n%s", startupDeadline, errOut)
	}
	return d
}
