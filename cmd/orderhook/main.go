// Command orderhook receives Stripe webhooks into a durable inbox and applies
// them in dependency order, exactly once. Run `orderhook --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks for a graceful stop, which a database that does
	// not answer can hold for half a minute; a second one ends the process
	// at once, as the signal's default action.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "orderhook:", err)
	}
	os.Exit(exitCode(err))
}
