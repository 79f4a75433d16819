package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderhook/orderhook/store"
)

func (a *app) purgeCmd() *cobra.Command {
	var (
		olderThan time.Duration
		dryRun    bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "purge --older-than DURATION",
		Short: "Delete applied, ignored and discarded events older than a retention period",
		Long: `Delete the applied, ignored and discarded events that Stripe created and
orderhook received more than --older-than ago, with their attempts and
history: the retention of the inbox, to run from cron. Dead, pending and
deferred events are never purged. The period is at least 720h (30 days):
Stripe retries an event for up to three days and keeps it in its API, to be
resent, for 30, and a stored id is what answers a resend "duplicate"
instead of applying the event again. The mirror tables
(stripe_customers, …) are not touched.

It deletes 1,000 rows per transaction; an interrupted purge can be run again.

Exit codes: 0 ok, 1 failed, 2 on a usage error.`,
		Example: `  orderhook purge --older-than 2160h --dry-run   # how many events older than 90 days
  orderhook purge --older-than 2160h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("older-than") {
				return usagef("--older-than is required: the retention period, at least %.0fh (30 days)", store.MinPurgeAge.Hours())
			}
			if olderThan < store.MinPurgeAge {
				return usagef("--older-than %s: keep at least %.0fh (30 days): Stripe keeps an event, to be resent, for 30 days", olderThan, store.MinPurgeAge.Hours())
			}
			db, err := a.globals.openInbox(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			res, err := db.Purge(cmd.Context(), store.PurgeParams{OlderThan: olderThan, DryRun: dryRun, Now: time.Now()})
			if err != nil {
				return fmt.Errorf("purge: %w (%d deleted before it failed)", err, res.Purged)
			}
			if asJSON {
				return printJSON(a.stdout, res)
			}
			verb := "purged"
			if dryRun {
				verb = "would purge"
			}
			fmt.Fprintf(a.stdout, "%s %s (applied, ignored or discarded) received before %s\n", verb, plural(int(res.Purged), "event"), res.Before.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "retention: purge final events older than this (at least 720h)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count, delete nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
