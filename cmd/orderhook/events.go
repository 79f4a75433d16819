package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orderhook/orderhook/store"
)

func (a *app) eventsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List, show and replay inbox events",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("events needs a subcommand: list, show or replay")
		},
	}
	cmd.AddCommand(a.eventsListCmd(), a.eventsShowCmd(), a.eventsReplayCmd())
	return cmd
}

// filterFlags are the flags that select events.
type filterFlags struct {
	statuses []string
	types    []string
	customer string
	since    string
	until    string
	limit    int
	cursor   string
	paged    bool           // --limit and --cursor are registered
	flags    *pflag.FlagSet // where they are registered
}

// register adds the filter flags; withStatus adds --status, withPage the
// paging flags.
func (f *filterFlags) register(fs *pflag.FlagSet, withStatus, withPage bool) {
	f.flags = fs
	if withStatus {
		fs.StringSliceVar(&f.statuses, "status", nil, "only these statuses: pending, deferred, applied, ignored, dead, discarded")
	}
	fs.StringSliceVar(&f.types, "type", nil, `only these event types; "invoice.*" matches a prefix`)
	fs.StringVar(&f.customer, "customer", "", "only events of this customer (cus_…)")
	fs.StringVar(&f.since, "since", "", "only events received at or after this RFC 3339 time, or this long ago (24h)")
	fs.StringVar(&f.until, "until", "", "only events received before this RFC 3339 time, or this long ago")
	if f.paged = withPage; withPage {
		fs.IntVar(&f.limit, "limit", store.DefaultListLimit, fmt.Sprintf("events per page, at most %d", store.MaxListLimit))
		fs.StringVar(&f.cursor, "cursor", "", "continue after the page that printed this cursor")
	}
}

// blank reports whether every one of values is empty or spaces.
func blank(values []string) bool {
	return !slices.ContainsFunc(values, func(v string) bool { return strings.TrimSpace(v) != "" })
}

// set reports whether any selecting flag was given.
func (f *filterFlags) set() bool {
	return len(f.statuses) > 0 || len(f.types) > 0 || f.customer != "" || f.since != "" || f.until != ""
}

// filter turns the flags into a store filter; bad values are usage errors,
// and so is a selecting flag given blank ("$TYPE" unset): taken as no
// filter, it would widen a bulk replay to every event.
func (f *filterFlags) filter(now time.Time) (store.EventFilter, error) {
	for _, fl := range []struct {
		name   string
		values []string
	}{
		{"status", f.statuses}, {"type", f.types}, {"customer", []string{f.customer}},
		{"since", []string{f.since}}, {"until", []string{f.until}},
	} {
		if f.flags.Changed(fl.name) && blank(fl.values) {
			return store.EventFilter{}, usagef("--%s is blank: give a value, or leave --%s out", fl.name, fl.name)
		}
	}
	// Trimmed, as the admin API's are: no Stripe identifier holds a space.
	out := store.EventFilter{CustomerID: strings.TrimSpace(f.customer), Limit: f.limit, Cursor: f.cursor}
	for _, t := range f.types {
		if t = strings.TrimSpace(t); t != "" {
			out.Types = append(out.Types, t)
		}
	}
	for _, s := range f.statuses {
		out.Statuses = append(out.Statuses, store.Status(strings.TrimSpace(s)))
	}
	var err error
	if out.Since, err = store.ParseTimeBound(f.since, now); err != nil {
		return out, usagef("--since: %v", err)
	}
	if out.Until, err = store.ParseTimeBound(f.until, now); err != nil {
		return out, usagef("--until: %v", err)
	}
	if f.paged && (f.limit < 1 || f.limit > store.MaxListLimit) {
		return out, usagef("--limit %d: use 1 to %d", f.limit, store.MaxListLimit)
	}
	return out, nil
}

func (a *app) eventsListCmd() *cobra.Command {
	var (
		f      filterFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List inbox events, newest first",
		Example: `  orderhook events list --status deferred --type 'invoice.*'
  orderhook events list --customer cus_123 --since 24h --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.listEvents(cmd, f, asJSON, false)
		},
	}
	f.register(cmd.Flags(), true, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// listEvents prints one page of events; dead fixes the status to dead.
func (a *app) listEvents(cmd *cobra.Command, f filterFlags, asJSON, dead bool) error {
	filter, err := f.filter(time.Now())
	if err != nil {
		return err
	}
	if dead {
		filter.Statuses = []store.Status{store.StatusDead}
	}
	db, err := a.globals.openInbox(cmd)
	if err != nil {
		return err
	}
	defer db.Close()
	page, err := db.ListEvents(cmd.Context(), filter)
	if err != nil {
		return storeUsage(err)
	}
	if asJSON {
		return printJSON(a.stdout, page)
	}
	if err := printEvents(a.stdout, page.Events, dead); err != nil {
		return err
	}
	if page.NextCursor != "" {
		fmt.Fprintf(a.stdout, "more: repeat with --cursor %s\n", page.NextCursor)
	}
	return nil
}

// printEvents prints events as a table; dead listings show the error, others
// what each event waits for or its error.
func printEvents(w io.Writer, events []store.Event, dead bool) error {
	if len(events) == 0 {
		fmt.Fprintln(w, "no events match")
		return nil
	}
	last := "WAITING FOR / LAST ERROR"
	if dead {
		last = "LAST ERROR"
	}
	t := newTable(w, "EVENT", "TYPE", "CUSTOMER", "STATUS", "ATTEMPTS", "RECEIVED", last)
	for _, ev := range events {
		note := ev.LastError
		if ev.Status == store.StatusDeferred && ev.WaitingFor != "" {
			note = "waiting for " + ev.WaitingFor
		}
		t.row(ev.ID, ev.Type, orDash(ev.CustomerID), string(ev.Status), strconv.Itoa(ev.Attempts),
			fmtTime(ev.ReceivedAt), orDash(clip(note, 80)))
	}
	return t.flush()
}

// storeUsage turns the store's invalid-input errors (a bad cursor or status)
// into usage errors.
func storeUsage(err error) error {
	if errors.Is(err, store.ErrInvalidInput) {
		return usageError{err}
	}
	return err
}

// actor names who runs an operator command, for the history.
func (a *app) actor() string {
	if u := a.getenv("USER"); u != "" {
		return "cli:" + u
	}
	return "cli"
}

func (a *app) eventsShowCmd() *cobra.Command {
	var asJSON, payload bool
	cmd := &cobra.Command{
		Use:   "show EVENT_ID",
		Short: "Show one event: envelope, status, why it waits or failed, and its history",
		Example: `  orderhook events show evt_1Q2w3E
  orderhook events show evt_1Q2w3E --payload | jq .data.object`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := a.globals.openInbox(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			d, err := db.EventDetail(cmd.Context(), args[0])
			switch {
			case errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("event %s: %w in the inbox; `orderhook events list` shows what is there", args[0], store.ErrNotFound)
			case err != nil:
				return err
			case payload:
				_, err = a.stdout.Write(d.Event.Payload)
				return err
			case asJSON:
				return printJSON(a.stdout, d)
			}
			return printDetail(a.stdout, d)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&payload, "payload", false, "print only the raw body Stripe sent, byte for byte")
	return cmd
}

// printDetail prints an event as fields, then its history.
func printDetail(w io.Writer, d store.EventDetail) error {
	ev := d.Event
	lease := "-"
	if ev.LeaseOwner != "" {
		lease = ev.LeaseOwner + " until " + fmtTimePtr(ev.LeaseExpiresAt)
	}
	t := newTable(w, "event", ev.ID)
	for _, f := range [][2]string{
		{"type", ev.Type}, {"status", string(ev.Status)}, {"customer", orDash(ev.CustomerID)},
		{"object", orDash(ev.ObjectID)}, {"created", fmtTime(ev.Created)}, {"received", fmtTime(ev.ReceivedAt)},
		{"api version", orDash(ev.APIVersion)}, {"livemode", strconv.FormatBool(ev.Livemode)},
		{"secret", "#" + strconv.Itoa(ev.SecretIndex)}, {"attempts", strconv.Itoa(ev.Attempts)},
		{"next attempt", fmtTime(ev.NextAttemptAt)}, {"waiting for", orDash(ev.WaitingFor)},
		{"released at", fmtTimePtr(ev.ReleasedAt)}, {"last error", orDash(ev.LastError)}, {"applied at", fmtTimePtr(ev.AppliedAt)}, {"lease", lease},
	} {
		t.row(f[0], f[1])
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(d.Attempts) == 0 {
		fmt.Fprintln(w, "no attempts yet")
		return nil
	}
	t = newTable(w, "AT", "OUTCOME", "ATTEMPT", "BY", "ERROR / DETAIL")
	for _, at := range d.Attempts {
		by := at.Worker
		if at.Actor != "" {
			by = at.Actor
		}
		note := strings.Trim(at.Error+" | "+at.Detail, " |")
		t.row(fmtTime(at.At), at.Outcome, strconv.Itoa(at.Attempt), orDash(by), orDash(note))
	}
	return t.flush()
}

func (a *app) eventsReplayCmd() *cobra.Command {
	var (
		force, dryRun, asJSON bool
		reason                string
	)
	cmd := &cobra.Command{
		Use:   "replay EVENT_ID...",
		Short: "Put events back to work: pending now, attempts reset, dependencies still checked",
		Long: `Put the named events back to pending, due now, with attempts reset; workers
then process them as new (an event whose customer is missing is deferred
again). Dead, deferred and pending events are replayed as they are; applied,
ignored and discarded ones run through the appliers and handlers again only
with --force. An event a worker is processing right now is refused, never
raced: retry once its lease expires. Each replay is recorded in the event's
history with who ran it and --reason.

Exit codes: 0 when every event was replayed, 1 when some were refused, 2 on a
usage error.`,
		Example: `  orderhook events replay evt_1Q2w3E --reason "handler fixed in v1.4.2"
  orderhook events replay evt_1Q2w3E --force   # re-run an applied event`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := a.globals.openInbox(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			res, err := db.Replay(cmd.Context(), store.ReplayParams{
				IDs: args, Force: force, DryRun: dryRun, Actor: a.actor(), Reason: reason, Now: time.Now(),
			})
			if err != nil {
				return storeUsage(err)
			}
			return a.printReplay(args, res, asJSON)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "also replay applied, ignored and discarded events")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check what would be replayed; change nothing")
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the events' history")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printReplay reports a replay of named events, one line each, and returns
// errProblemsFound when some were refused.
func (a *app) printReplay(ids []string, res store.ReplayResult, asJSON bool) error {
	if asJSON {
		if err := printJSON(a.stdout, res); err != nil {
			return err
		}
	} else {
		refused := make(map[string]string, len(res.Refused))
		for _, r := range res.Refused {
			refused[r.EventID] = r.Reason
		}
		verb := "replayed"
		if res.DryRun {
			verb = "would replay"
		}
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			id = strings.TrimSpace(id) // as the store reads it
			switch {
			case id == "", seen[id]:
			case refused[id] != "":
				fmt.Fprintf(a.stdout, "refused %s: %s\n", id, refused[id])
			default:
				fmt.Fprintf(a.stdout, "%s %s\n", verb, id)
			}
			seen[id] = true
		}
	}
	if len(res.Refused) > 0 {
		return fmt.Errorf("%s refused: %w", plural(len(res.Refused), "event"), errProblemsFound)
	}
	return nil
}
