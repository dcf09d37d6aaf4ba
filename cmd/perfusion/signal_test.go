//go:build unix

package main

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptCancelsCommand sends this process SIGINT while a headless
// command runs and checks that the command's context is cancelled.
func TestInterruptCancelsCommand(t *testing.T) {
	cancelled := false
	c, _, stderr, _ := testCLI(command{name: "wait", summary: "waits for Ctrl-C", run: func(ctx context.Context, _ []string) error {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			cancelled = true
			return ctx.Err()
		case <-time.After(30 * time.Second): // a deadline, not a timing check
			return nil
		}
	}})
	code := c.run([]string{"wait"})
	if !cancelled {
		t.Fatal("SIGINT did not cancel the command's context")
	}
	if code != exitInterrupted || !strings.Contains(stderr.String(), "perfusion wait: interrupted") {
		t.Errorf("exit %d, stderr %q; want %d and an interrupted message", code, stderr, exitInterrupted)
	}
}
