package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderhook/orderhook/store"
)

func (a *app) statusCmd() *cobra.Command {
	var (
		asJSON bool
		top    int
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Summarize the inbox: counts, oldest waiting events, dependencies, dead events, secrets in use",
		Long: `Summarize the inbox: events per status, the age of the oldest pending and
deferred event, deferred events grouped by what they wait for, and how many
events each signing secret verified in the last 24 hours (a secret with none
can be retired).

Exit codes: 0 when no event is dead, 1 when some are (usable as a cron or
monitoring check), 2 on a usage error.`,
		Example: `  orderhook status
  orderhook status --json | jq .dead
  orderhook status >/dev/null || alert "orderhook has dead events"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if top < 1 {
				return usagef("--top %d: use a positive number", top)
			}
			db, err := a.globals.openInbox(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			s, err := db.Stats(cmd.Context(), time.Now(), top)
			if err != nil {
				return err
			}
			if asJSON {
				err = printJSON(a.stdout, s)
			} else {
				err = printStats(a.stdout, s)
			}
			if err == nil && s.Dead > 0 {
				err = fmt.Errorf("%s: %w", plural(s.Dead, "dead event"), errProblemsFound)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&top, "top", 10, "show the N dependencies most events wait for")
	return cmd
}

// printStats prints the status report as tables.
func printStats(w io.Writer, s store.Stats) error {
	t := newTable(w, "STATUS", "EVENTS", "")
	for _, st := range store.Statuses {
		note := ""
		if st == store.StatusPending && s.Leased > 0 {
			note = fmt.Sprintf("%d being processed now", s.Leased)
		}
		t.row(string(st), strconv.Itoa(s.Counts[st]), note)
	}
	t.row("total", strconv.Itoa(s.Total), "")
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, o := range []struct {
		label string
		ev    *store.OldestEvent
	}{{"oldest pending: ", s.OldestPending}, {"oldest deferred:", s.OldestDeferred}} {
		if o.ev == nil {
			fmt.Fprintf(w, "%s none\n", o.label)
			continue
		}
		fmt.Fprintf(w, "%s %s, received %s (%s ago)\n", o.label, o.ev.EventID, fmtTime(o.ev.ReceivedAt), fmtAge(o.ev.Age()))
	}
	if err := printWaiting(w, s); err != nil {
		return err
	}
	if err := printSecrets(w, s); err != nil {
		return err
	}
	if s.Dead > 0 {
		fmt.Fprintf(w, "\n%s: see why with `orderhook dead list`, replay with `orderhook dead replay --all` once fixed.\n", plural(s.Dead, "dead event"))
	}
	return nil
}

func printWaiting(w io.Writer, s store.Stats) error {
	if s.WaitingKeys == 0 {
		return nil
	}
	fmt.Fprintf(w, "\ndeferred events by what they wait for (top %d of %d):\n", len(s.Waiting), s.WaitingKeys)
	t := newTable(w, "WAITING FOR", "EVENTS", "OLDEST")
	for _, g := range s.Waiting {
		t.row(g.WaitingFor, strconv.Itoa(g.Events), fmtAge(s.Now.Sub(g.OldestReceivedAt))+" ago")
	}
	return t.flush()
}

func printSecrets(w io.Writer, s store.Stats) error {
	fmt.Fprintln(w, "\nevents per signing secret, last 24h:")
	if len(s.Secrets) == 0 {
		fmt.Fprintln(w, "none received")
		return nil
	}
	t := newTable(w, "SECRET", "EVENTS", "LAST RECEIVED")
	for _, u := range s.Secrets {
		t.row("#"+strconv.Itoa(u.Index), strconv.Itoa(u.Events), fmtAge(s.Now.Sub(u.LastReceivedAt))+" ago")
	}
	return t.flush()
}
