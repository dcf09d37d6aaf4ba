package main

import "context"

// command is one headless subcommand: `perfusion NAME [flags] [args]`.
type command struct {
	name    string
	summary string // one line for the usage text
	// run parses its own flags from args and returns when its work is done or
	// ctx is cancelled (Ctrl-C). Flag errors are wrapped in errUsage.
	run func(ctx context.Context, args []string) error
}

// commands is the table of headless subcommands. Only commands that work are
// listed.
func commands() []command {
	return []command{generateCommand(), trainCommand(), tokenizeCommand(), benchCommand(), conceptsCommand(), evalDefaultCommand()}
}
