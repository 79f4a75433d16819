package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/orderhook/orderhook/store"
)

// errAborted is returned when the operator answers no to a confirmation.
var errAborted = errors.New("aborted: nothing was changed")

func (a *app) deadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "List, replay and discard dead events (the ones orderhook gave up on)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("dead needs a subcommand: list, replay or discard")
		},
	}
	cmd.AddCommand(a.deadListCmd(), a.deadReplayCmd(), a.deadDiscardCmd())
	return cmd
}

func (a *app) deadListCmd() *cobra.Command {
	var (
		f      filterFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List dead events, newest first, with their last error",
		Example: `  orderhook dead list --type 'invoice.*' --since 24h`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.listEvents(cmd, f, asJSON, true)
		},
	}
	f.register(cmd.Flags(), false, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// deadReplayFlags are the values of dead replay's flags.
type deadReplayFlags struct {
	filter filterFlags
	all    bool
	dryRun bool
	yes    bool
	asJSON bool
	reason string
}

func (a *app) deadReplayCmd() *cobra.Command {
	var f deadReplayFlags
	cmd := &cobra.Command{
		Use:   "replay (EVENT_ID... | --all [filters])",
		Short: "Put dead events back to pending: attempts reset, dependencies still checked",
		Long: `Put dead events back to pending, due now, with attempts reset and the reason
recorded in their history; workers then process them as new (an event whose
customer is still missing is deferred again, not applied).

Name the events, or pass --all with optional filters. The command first shows
how many events match; --dry-run stops there. It then asks for confirmation
when stdin is a terminal; elsewhere pass --yes. Bulk replays show a progress
bar on a terminal.

Exit codes: 0 done (or nothing to do), 1 some named events were refused or the
confirmation was declined, 2 usage error.`,
		Example: `  orderhook dead replay --all --type invoice.paid --since 24h --dry-run
  orderhook dead replay --all --type invoice.paid --since 24h --reason "fixed in v1.4.2"
  orderhook dead replay evt_1Q2w3E evt_9Z8y7X --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := f.params(args, a.actor())
			if err != nil {
				return err
			}
			return a.deadReplay(cmd, p, f)
		},
	}
	f.filter.register(cmd.Flags(), false, false)
	cmd.Flags().BoolVar(&f.all, "all", false, "replay every dead event matching the filters")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "show how many events would be replayed; change nothing")
	cmd.Flags().BoolVarP(&f.yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().StringVar(&f.reason, "reason", "", "why, kept in the events' history")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
	return cmd
}

// params checks how dead replay was called and builds the store request.
func (f *deadReplayFlags) params(ids []string, actor string) (store.ReplayParams, error) {
	switch {
	case len(ids) > 0 && f.all:
		return store.ReplayParams{}, usagef("name events or pass --all, not both")
	case len(ids) == 0 && !f.all:
		return store.ReplayParams{}, usagef("name the dead events to replay, or pass --all (with filters such as --type, --since) to replay every matching one")
	case len(ids) > 0 && f.filter.set():
		return store.ReplayParams{}, usagef("--type, --customer, --since and --until select events for --all; do not combine them with event ids")
	}
	filter, err := f.filter.filter(time.Now())
	if err != nil {
		return store.ReplayParams{}, err
	}
	filter.Statuses = []store.Status{store.StatusDead}
	return store.ReplayParams{IDs: ids, Filter: filter, Actor: actor, Reason: f.reason}, nil
}

// deadReplay counts, confirms, then replays with a progress bar.
func (a *app) deadReplay(cmd *cobra.Command, p store.ReplayParams, f deadReplayFlags) error {
	db, err := a.globals.openInbox(cmd)
	if err != nil {
		return err
	}
	defer db.Close()
	p.DryRun, p.Now = true, time.Now()
	check, err := db.Replay(cmd.Context(), p)
	if err != nil {
		return storeUsage(err)
	}
	if check.Eligible == 0 && len(p.IDs) == 0 && !f.dryRun && !f.asJSON {
		fmt.Fprintln(a.stdout, "no dead event matches: nothing to replay")
		return nil
	}
	if f.dryRun || check.Eligible == 0 {
		return a.reportDeadReplay(p.IDs, check, f.asJSON)
	}
	fmt.Fprintf(a.stderr, "%s %s.\n", plural(check.Eligible, "dead event"), matchVerb(check.Eligible))
	if !f.yes {
		if err := a.confirm(fmt.Sprintf("Replay %s?", plural(check.Eligible, "dead event"))); err != nil {
			return err
		}
	}
	p.DryRun, p.Now = false, time.Now()
	bar := a.progress(check.Eligible, "replaying")
	p.Progress = func(done, _ int) { _ = bar.Set(done) }
	res, err := db.Replay(cmd.Context(), p)
	_ = bar.Finish()
	if err != nil {
		return err
	}
	return a.reportDeadReplay(p.IDs, res, f.asJSON)
}

func matchVerb(n int) string {
	if n == 1 {
		return "matches"
	}
	return "match"
}

// reportDeadReplay prints the outcome of dead replay (or its dry run).
func (a *app) reportDeadReplay(ids []string, res store.ReplayResult, asJSON bool) error {
	if len(ids) > 0 {
		return a.printReplay(ids, res, asJSON)
	}
	if asJSON {
		return printJSON(a.stdout, res)
	}
	switch {
	case res.DryRun:
		fmt.Fprintf(a.stdout, "dry run: %s would be replayed\n", plural(res.Eligible, "dead event"))
	default:
		fmt.Fprintf(a.stdout, "replayed %s; workers pick them up now, dependencies still apply\n", plural(res.Replayed, "dead event"))
	}
	if skipped := res.Eligible - res.Replayed; !res.DryRun && skipped > 0 {
		fmt.Fprintf(a.stdout, "%s changed state meanwhile and %s not replayed\n", plural(skipped, "event"), wasWere(skipped))
	}
	return nil
}

func wasWere(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

// confirm asks question on the terminal. Without a terminal it refuses with a
// usage error naming --yes; a declined answer returns errAborted.
func (a *app) confirm(question string) error {
	if !isTerminal(a.stdin) {
		return usagef("stdin is not a terminal, so orderhook cannot ask for confirmation: pass --yes to proceed (or --dry-run to only count)")
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	answer, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && answer == "" {
		return errAborted
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errAborted
}

// progress returns a progress bar on stderr when it is a terminal, and an
// invisible one otherwise.
func (a *app) progress(total int, what string) *progressbar.ProgressBar {
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetVisibility(isTerminal(a.stderr)),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (a *app) deadDiscardCmd() *cobra.Command {
	var (
		reason string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "discard EVENT_ID... --reason TEXT",
		Short: "Give up on events for good: status discarded, with the reason in their history",
		Long: `Give up on the named events for good: their status becomes discarded and the
reason, with who ran the command, is recorded in their history. Dead, deferred
and pending events can be discarded; applied and ignored ones cannot, and one
a worker is processing right now is refused. A discarded event can still be
replayed with 'orderhook events replay --force'.

Exit codes: 0 when every event was discarded, 1 when some were refused, 2 on a
usage error.`,
		Example: `  orderhook dead discard evt_1Q2w3E --reason "test-mode customer deleted by hand"`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("--reason is required: say why, it is kept in the events' history")
			}
			db, err := a.globals.openInbox(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			res, err := db.Discard(cmd.Context(), store.DiscardParams{IDs: args, Reason: reason, Actor: a.actor(), Now: time.Now()})
			if err != nil {
				return storeUsage(err)
			}
			return a.printDiscard(res, asJSON)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required), kept in the events' history")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printDiscard reports a discard and returns errProblemsFound when some
// events were refused.
func (a *app) printDiscard(res store.DiscardResult, asJSON bool) error {
	if asJSON {
		if err := printJSON(a.stdout, res); err != nil {
			return err
		}
	} else {
		for _, id := range res.Discarded {
			fmt.Fprintf(a.stdout, "discarded %s\n", id)
		}
		for _, r := range res.Refused {
			fmt.Fprintf(a.stdout, "refused %s: %s\n", r.EventID, r.Reason)
		}
	}
	if len(res.Refused) > 0 {
		return fmt.Errorf("%s refused: %w", plural(len(res.Refused), "event"), errProblemsFound)
	}
	return nil
}
