package main

import "github.com/spf13/cobra"

// opsCommands are the operator commands: status, events, dead, purge.
func (a *app) opsCommands() []*cobra.Command {
	return []*cobra.Command{a.statusCmd(), a.eventsCmd(), a.deadCmd(), a.purgeCmd()}
}
