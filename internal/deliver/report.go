package deliver

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ErrUndelivered is returned, wrapped, by Report.Err when a delivery did not
// finally get a 2xx answer.
var ErrUndelivered = errors.New("undelivered events")

// maxFailures bounds Report.Failures.
const maxFailures = 10

// Report is the outcome of one Sender.Run.
//
// A delivery is one event sent once (Repeat sends each event several
// times); with Until2xx it may take several HTTP requests. Status and
// TransportErrors count the final attempt of each delivery; Latency covers
// every HTTP request that got a response, retries included.
type Report struct {
	Events          int           // distinct events given to Run
	Planned         int           // deliveries planned: Events × Repeat
	Delivered       int           // deliveries that finally got a 2xx
	Failed          int           // deliveries that finally got a non-2xx or a transport error
	Unsent          int           // deliveries not made because the context ended first
	Requests        int           // HTTP requests made, retries included
	Retries         int           // requests beyond the first of each delivery
	Status          map[int]int   // final HTTP status → deliveries
	TransportErrors int           // deliveries whose final attempt got no response
	Duration        time.Duration // wall time of the run
	Latency         Latency       // per HTTP request that got a response
	Seed            uint64        // the shuffle seed used; 0 when not shuffled
	Failures        []Failure     // the first failed deliveries, in send order, at most 10

	latencies []time.Duration // what Latency summarizes, sorted, for Join
}

// Failure describes a delivery that did not get a 2xx.
type Failure struct {
	EventID  string `json:"event_id"`
	Name     string `json:"name"`             // the event's Name, usually its file
	Status   int    `json:"status,omitempty"` // 0 for a transport error
	Error    string `json:"error"`            // the transport error, or the start of the response body
	Attempts int    `json:"attempts"`         // requests that got an answer or a transport error
}

// Latency summarizes request durations.
type Latency struct {
	Count int // number of durations summarized
	P50   time.Duration
	P95   time.Duration
	P99   time.Duration
	Max   time.Duration
}

// Rate returns the finished deliveries (delivered or failed) per second of
// Duration, or 0 for an empty run.
func (r Report) Rate() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Delivered+r.Failed) / r.Duration.Seconds()
}

// Join returns the report of r and then o as one run: counts, answers and
// durations add up (the time between the two runs is not counted), the
// latencies are summarized over both, Failures keeps the first of r's and
// then o's, and Seed is r's.
func (r Report) Join(o Report) Report {
	j := r
	j.Events += o.Events
	j.Planned += o.Planned
	j.Delivered += o.Delivered
	j.Failed += o.Failed
	j.Unsent += o.Unsent
	j.Requests += o.Requests
	j.Retries += o.Retries
	j.TransportErrors += o.TransportErrors
	j.Duration += o.Duration
	j.Status = make(map[int]int, len(r.Status)+len(o.Status))
	for _, s := range []map[int]int{r.Status, o.Status} {
		for code, n := range s {
			j.Status[code] += n
		}
	}
	failures := slices.Concat(r.Failures, o.Failures)
	j.Failures = failures[:min(len(failures), maxFailures)]
	j.latencies = slices.Concat(r.latencies, o.latencies)
	j.Latency = Summarize(j.latencies)
	return j
}

// Err returns nil when every planned delivery finally got a 2xx, and
// otherwise an error wrapping ErrUndelivered that says how many did not.
func (r Report) Err() error {
	if r.Delivered == r.Planned {
		return nil
	}
	if r.Unsent > 0 {
		return fmt.Errorf("%w: %d of %d deliveries failed, %d not sent", ErrUndelivered, r.Failed, r.Planned, r.Unsent)
	}
	return fmt.Errorf("%w: %d of %d deliveries failed", ErrUndelivered, r.Failed, r.Planned)
}

// Summarize returns the nearest-rank percentiles of d. It sorts d in place.
func Summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	return Latency{
		Count: len(d),
		P50:   Percentile(d, 50),
		P95:   Percentile(d, 95),
		P99:   Percentile(d, 99),
		Max:   d[len(d)-1],
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, which must be in ascending order: the smallest value that at least
// p percent of the values are less than or equal to. It returns 0 for an
// empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted)) / 100))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
