package deliver

import (
	"crypto/rand"
	"strconv"
	"strings"
)

// idGenerator makes event ids unique within a run (a counter) and across
// runs (a random prefix), in the shape of Stripe's: "evt_" and 24 letters
// and digits.
type idGenerator struct {
	prefix string
	n      uint64
}

func newIDGenerator() *idGenerator {
	return &idGenerator{prefix: "evt_" + rand.Text()[:12]}
}

func (g *idGenerator) next() string {
	g.n++
	c := strconv.FormatUint(g.n, 36)
	return g.prefix + strings.Repeat("0", max(0, 12-len(c))) + c
}

// freshIDs returns copies of events, each with a new unique id.
func freshIDs(events []Event) ([]Event, error) {
	gen := newIDGenerator()
	out := make([]Event, len(events))
	for i, ev := range events {
		var err error
		if out[i], err = ev.WithID(gen.next()); err != nil {
			return nil, err
		}
	}
	return out, nil
}
