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
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "orderhook:", err)
	}
	os.Exit(exitCode(err))
}
