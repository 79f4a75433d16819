package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/internal/stripeevent"
)

// defaultSendURL is where `orderhook serve` listens by default.
const defaultSendURL = "http://127.0.0.1:8080/webhooks/stripe"

// sendBindings are the variables behind send's flags.
func sendBindings() []envBinding {
	return []envBinding{
		{"url", []string{"ORDERHOOK_SEND_URL"}},
		{"secret", []string{"ORDERHOOK_STRIPE_SECRETS"}},
	}
}

// sendFlags are the values of send's flags; most go straight into the
// sender's configuration.
type sendFlags struct {
	cfg      deliver.Config
	deadline time.Duration
	asJSON   bool
}

func (f *sendFlags) register(flags *pflag.FlagSet) {
	flags.StringVar(&f.cfg.URL, "url", defaultSendURL, "webhook endpoint to post to")
	flags.StringArrayVar(&f.cfg.Secrets, "secret", nil, "signing secret whsec_…; repeat it or separate with commas to sign with several, as Stripe does while rolling secrets")
	flags.IntVar(&f.cfg.Concurrency, "concurrency", 1, "deliveries in flight at once")
	flags.BoolVar(&f.cfg.Shuffle, "shuffle", false, "send in random order")
	flags.Uint64Var(&f.cfg.Seed, "seed", 0, "shuffle seed, to repeat an order (needs --shuffle; the report prints the seed used)")
	flags.IntVar(&f.cfg.Repeat, "repeat", 1, "send each event N times (duplicate deliveries)")
	flags.BoolVar(&f.cfg.FreshIDs, "fresh-ids", false, "give every event a new unique id on each run, so the same files can be sent again")
	flags.BoolVar(&f.cfg.Until2xx, "until-2xx", false, "retry non-2xx answers and transport errors with exponential backoff and jitter, like Stripe; a waiting retry holds back no other delivery")
	flags.IntVar(&f.cfg.MaxRetries, "max-retries", deliver.DefaultMaxRetries, "retries per delivery with --until-2xx")
	flags.DurationVar(&f.cfg.BackoffMin, "backoff", deliver.DefaultBackoffMin, "wait before the first retry; doubles on each retry")
	flags.DurationVar(&f.cfg.BackoffMax, "max-backoff", deliver.DefaultBackoffMax, "longest wait between retries")
	flags.DurationVar(&f.cfg.Timeout, "timeout", deliver.DefaultTimeout, "limit on each HTTP request")
	flags.DurationVar(&f.deadline, "deadline", 0, "stop after this long and report what was sent (0: no limit)")
	flags.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	envHelp(flags, sendBindings())
}

// validate rejects what the sender would silently default.
func (f *sendFlags) validate(flags *pflag.FlagSet) error {
	var err error
	if f.cfg.Secrets, err = secretList(f.cfg.Secrets); err != nil {
		return err
	}
	switch {
	case len(f.cfg.Secrets) == 0:
		return usagef("no signing secret: pass --secret whsec_… (the one `orderhook serve` printed, or the endpoint's) or set ORDERHOOK_STRIPE_SECRETS")
	case f.cfg.Concurrency < 1:
		return usagef("--concurrency %d: use 1 or more", f.cfg.Concurrency)
	case f.cfg.Repeat < 1:
		return usagef("--repeat %d: use 1 or more", f.cfg.Repeat)
	case f.cfg.MaxRetries < 1:
		return usagef("--max-retries %d: use 1 or more", f.cfg.MaxRetries)
	case f.cfg.Timeout <= 0 || f.cfg.BackoffMin <= 0 || f.cfg.BackoffMax < f.cfg.BackoffMin:
		return usagef("--timeout and --backoff must be positive, and --max-backoff at least --backoff")
	case f.deadline < 0:
		return usagef("--deadline %s: use a positive duration, or 0 for no limit", f.deadline)
	case flags.Changed("seed") && !f.cfg.Shuffle:
		return usagef("--seed needs --shuffle")
	}
	return nil
}

func (a *app) sendCmd() *cobra.Command {
	var f sendFlags
	cmd := &cobra.Command{
		Use:   "send FILE|DIR…",
		Short: "Sign Stripe event files and post them to a webhook endpoint, as Stripe does",
		Long: `Sign Stripe event files and post them exactly as Stripe does: the raw bytes,
a Stripe-Signature header with one v1 signature per --secret (signed at send
time, again on each retry), Stripe's Content-Type and User-Agent. It is the
offline stand-in for ` + "`stripe trigger`" + ` and a load generator.

A DIR sends every *.json file below it, sorted by path, symlinks to files
included; symlinks to directories below it are not followed (name them,
as a DIR, to send what they hold). Each file must be a Stripe event. The
report counts the final answer of each delivery; latency percentiles are
per HTTP request, retries included.

Exits 0 when every delivery got a 2xx, 1 when some did not, 2 on usage errors.`,
		Example: `  orderhook send --secret whsec_… testdata/events
  orderhook send --secret whsec_… --fresh-ids --shuffle --concurrency 16 --repeat 3 testdata/events
  ORDERHOOK_STRIPE_SECRETS=whsec_… orderhook send --until-2xx --json invoice.paid.json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("name at least one event FILE or DIR, for example testdata/events")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.bindEnv(cmd.Flags(), sendBindings()); err != nil {
				return err
			}
			if err := f.validate(cmd.Flags()); err != nil {
				return err
			}
			return a.send(cmd.Context(), &f, args)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// send loads the events at paths, sends them and prints the report. It
// returns an error when a delivery did not get a 2xx.
func (a *app) send(ctx context.Context, f *sendFlags, paths []string) error {
	events, err := deliver.Load(paths...)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, stripeevent.ErrMalformed) || errors.Is(err, deliver.ErrNoEvents) {
			return usageError{err}
		}
		return err
	}
	sender, err := deliver.New(f.cfg)
	if err != nil {
		return usageError{err}
	}
	defer sender.CloseIdleConnections()
	if f.deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.deadline)
		defer cancel()
	}

	tick, stop := a.sendProgress(len(events)*f.cfg.Repeat, "sending")
	rep, err := sender.Run(ctx, events, tick)
	stop()
	if err != nil && rep.Planned == 0 {
		return err
	}
	if perr := a.printSendReport(f, rep); perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	return rep.Err()
}

// sendProgress returns a function to call once per finished item and one to
// call at the end. They draw a bar on stderr when it is a terminal, and do
// nothing otherwise.
func (a *app) sendProgress(total int, what string) (tick, stop func()) {
	if !isTerminal(a.stderr) {
		return func() {}, func() {}
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return func() { _ = bar.Add(1) }, func() { _ = bar.Clear() }
}

func (a *app) printSendReport(f *sendFlags, rep deliver.Report) error {
	if f.asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(newSendJSON(f, rep))
	}
	return printSendTable(a.stdout, f, rep)
}

// printSendTable writes the report for people: the tally, the numbers, the
// first failures.
func printSendTable(w io.Writer, f *sendFlags, rep deliver.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ANSWER\tDELIVERIES")
	for _, code := range slices.Sorted(maps.Keys(rep.Status)) {
		fmt.Fprintf(tw, "%s\t%s\n", statusLine(code), humanize.Comma(int64(rep.Status[code])))
	}
	if rep.TransportErrors > 0 {
		fmt.Fprintf(tw, "transport error\t%s\n", humanize.Comma(int64(rep.TransportErrors)))
	}
	if rep.Unsent > 0 {
		fmt.Fprintf(tw, "not sent\t%s\n", humanize.Comma(int64(rep.Unsent)))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "url\t%s\n", redactURL(f.cfg.URL))
	fmt.Fprintf(tw, "deliveries\t%s (%s events × %d)\n", humanize.Comma(int64(rep.Planned)), humanize.Comma(int64(rep.Events)), f.cfg.Repeat)
	fmt.Fprintf(tw, "requests\t%s (%s retries)\n", humanize.Comma(int64(rep.Requests)), humanize.Comma(int64(rep.Retries)))
	fmt.Fprintf(tw, "duration\t%s (%.1f events/s)\n", rep.Duration.Round(time.Millisecond), rep.Rate())
	fmt.Fprintf(tw, "latency\t%s\n", latencyLine(rep.Latency))
	if rep.Seed != 0 {
		fmt.Fprintf(tw, "seed\t%d (--shuffle --seed %d repeats this order)\n", rep.Seed, rep.Seed)
	}
	if len(rep.Failures) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "FAILED EVENT\tFILE\tATTEMPTS\tLAST ANSWER")
		for _, fl := range rep.Failures {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", fl.EventID, fl.Name, fl.Attempts, shorten(failureAnswer(fl), maxAnswerWidth))
		}
		if n := rep.Failed - len(rep.Failures); n > 0 {
			fmt.Fprintf(tw, "… and %s more\n", humanize.Comma(int64(n)))
		}
	}
	return tw.Flush()
}

// maxAnswerWidth bounds the answer column of the failure table; --json has
// the whole of what the report keeps.
const maxAnswerWidth = 120

// latencyLine returns the request latency percentiles on one line.
func latencyLine(l deliver.Latency) string {
	if l.Count == 0 {
		return "none: no request was answered"
	}
	r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s (per HTTP request, %s answered)",
		r(l.P50), r(l.P95), r(l.P99), r(l.Max), humanize.Comma(int64(l.Count)))
}

// shorten cuts s to at most n runes, marking the cut.
func shorten(s string, n int) string {
	runes := []rune(s)
	if len(runes) <= n {
		return s
	}
	return string(runes[:n-1]) + "…"
}

// statusLine returns "200 OK" for a status code.
func statusLine(code int) string {
	if text := http.StatusText(code); text != "" {
		return fmt.Sprintf("%d %s", code, text)
	}
	return fmt.Sprint(code)
}

// failureAnswer describes the last answer of a failed delivery.
func failureAnswer(fl deliver.Failure) string {
	switch {
	case fl.Status == 0:
		return "transport error: " + fl.Error
	case fl.Error == "":
		return statusLine(fl.Status)
	default:
		return statusLine(fl.Status) + ": " + fl.Error
	}
}

// redactURL hides a password in the URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

// sendJSON is the report of `send --json`.
type sendJSON struct {
	OK              bool              `json:"ok"`
	URL             string            `json:"url"`
	Events          int               `json:"events"`
	Repeat          int               `json:"repeat"`
	Deliveries      int               `json:"deliveries"`
	Delivered       int               `json:"delivered"`
	Failed          int               `json:"failed"`
	Unsent          int               `json:"unsent"`
	Requests        int               `json:"requests"`
	Retries         int               `json:"retries"`
	Status          map[int]int       `json:"status"`
	TransportErrors int               `json:"transport_errors"`
	DurationSeconds float64           `json:"duration_seconds"`
	EventsPerSecond float64           `json:"events_per_second"`
	LatencyMS       latencyJSON       `json:"latency_ms"`
	Seed            uint64            `json:"seed,omitempty"`
	Failures        []deliver.Failure `json:"failures"`
}

// latencyJSON holds request latencies in milliseconds.
type latencyJSON struct {
	Basis string  `json:"basis"`
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func newSendJSON(f *sendFlags, rep deliver.Report) sendJSON {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return sendJSON{
		OK:              rep.Err() == nil,
		URL:             redactURL(f.cfg.URL),
		Events:          rep.Events,
		Repeat:          f.cfg.Repeat,
		Deliveries:      rep.Planned,
		Delivered:       rep.Delivered,
		Failed:          rep.Failed,
		Unsent:          rep.Unsent,
		Requests:        rep.Requests,
		Retries:         rep.Retries,
		Status:          rep.Status,
		TransportErrors: rep.TransportErrors,
		DurationSeconds: rep.Duration.Seconds(),
		EventsPerSecond: rep.Rate(),
		LatencyMS: latencyJSON{
			Basis: "request", Count: rep.Latency.Count,
			P50: ms(rep.Latency.P50), P95: ms(rep.Latency.P95), P99: ms(rep.Latency.P99), Max: ms(rep.Latency.Max),
		},
		Seed:     rep.Seed,
		Failures: append([]deliver.Failure{}, rep.Failures...),
	}
}
