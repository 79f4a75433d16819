package reconcile

import (
	"strings"
	"time"
)

// version orders the states one mirror object passes through, so that the
// final mirror does not depend on delivery order. Keys compare in order:
//
//  1. terminal: a terminal state (customer deleted; subscription canceled;
//     invoice paid, void, uncollectible, deleted) beats any non-terminal one,
//     whatever its time, so terminal states never regress;
//  2. created: the newer event wins;
//  3. rank: within one second (Stripe's granularity), the later lifecycle
//     state wins (draft < open; incomplete < trialing < active);
//  4. typeRank: then *.created < *.updated < *.deleted.
//
// When every key ties, the later-applied event wins: Stripe gives no finer
// order than that.
type version struct {
	terminal bool
	created  time.Time
	rank     int
	typeRank int
}

// supersedes reports whether an event at version next overwrites a row at
// version cur.
func supersedes(cur, next version) bool {
	if cur.terminal != next.terminal {
		return next.terminal
	}
	if !cur.created.Equal(next.created) {
		return next.created.After(cur.created)
	}
	if cur.rank != next.rank {
		return next.rank > cur.rank
	}
	return next.typeRank >= cur.typeRank
}

// typeRank orders event types by where they fall in an object's life.
func typeRank(eventType string) int {
	switch {
	case strings.HasSuffix(eventType, ".created"):
		return 0
	case strings.HasSuffix(eventType, ".deleted"):
		return 2
	default:
		return 1
	}
}

// customerVersion is the version of a customer state; deleted is terminal.
func customerVersion(deleted bool, created time.Time, eventType string) version {
	return version{terminal: deleted, created: created, typeRank: typeRank(eventType)}
}

// subscriptionVersion is the version of a subscription state.
func subscriptionVersion(status string, created time.Time, eventType string) version {
	rank, terminal := subscriptionRank(status)
	return version{terminal: terminal, created: created, rank: rank, typeRank: typeRank(eventType)}
}

// invoiceVersion is the version of an invoice state.
func invoiceVersion(status string, created time.Time, eventType string) version {
	rank, terminal := invoiceRank(status)
	return version{terminal: terminal, created: created, rank: rank, typeRank: typeRank(eventType)}
}

// subscriptionRank ranks a subscription status; canceled and
// incomplete_expired are terminal.
func subscriptionRank(status string) (rank int, terminal bool) {
	switch status {
	case "incomplete":
		return 0, false
	case "trialing":
		return 1, false
	case "canceled", "incomplete_expired":
		return 3, true
	default: // active, past_due, unpaid, paused and statuses yet to come
		return 2, false
	}
}

// invoiceRank ranks an invoice status; paid, void, uncollectible and deleted
// are terminal.
func invoiceRank(status string) (rank int, terminal bool) {
	switch status {
	case "draft":
		return 0, false
	case "paid", "void", "uncollectible", invoiceDeleted:
		return 2, true
	default: // open
		return 1, false
	}
}
