//go:build reliability

package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/internal/scenario"
)

// badRequest is one generated hostile request and the answer it must get.
type badRequest struct {
	kind    string
	method  string
	header  http.Header
	body    []byte
	status  int    // the right 4xx
	problem string // the problem name of orderhook's answer; "" when net/http answers
}

// Problem names of the README's HTTP contract.
const (
	invalidSignature = "invalid-signature"
	staleSignature   = "stale-signature"
	malformedEvent   = "malformed-event"
	methodNotAllowed = "method-not-allowed"
	payloadTooLarge  = "payload-too-large"
)

// badRequests generates n hostile requests, cycling through the kinds,
// each one built from a fresh real event so that nothing but its flaw is
// wrong.
func badRequests(rng *rand.Rand, n int) []badRequest {
	s := scenario.Generate(scenario.Config{Customers: 50, Seed: 5, Prefix: "hostile"})
	kinds := badKinds()
	out := make([]badRequest, 0, n)
	for i := range n {
		k := kinds[i%len(kinds)]
		ev := s.Events[rng.IntN(len(s.Events))]
		r := k.build(rng, ev.Payload)
		r.kind = k.name
		if r.method == "" {
			r.method = http.MethodPost
		}
		out = append(out, r)
	}
	return out
}

// badKind is a family of hostile requests.
type badKind struct {
	name  string
	build func(rng *rand.Rand, event []byte) badRequest
}

func badKinds() []badKind {
	return []badKind{
		{"missing-signature", func(_ *rand.Rand, ev []byte) badRequest {
			return badRequest{header: http.Header{}, body: ev, status: 400, problem: invalidSignature}
		}},
		{"garbled-signature", func(rng *rand.Rand, ev []byte) badRequest {
			return badRequest{header: sigHeader(garble(rng)), body: ev, status: 400, problem: invalidSignature}
		}},
		{"wrong-secret", func(_ *rand.Rand, ev []byte) badRequest {
			return badRequest{header: sigHeader(deliver.Signature(time.Now(), ev, "whsec_not_the_secret")), body: ev, status: 400, problem: invalidSignature}
		}},
		{"tampered-body", func(rng *rand.Rand, ev []byte) badRequest {
			h := signed(ev)
			b := bytes.Clone(ev)
			b[rng.IntN(len(b))] ^= 0x01
			return badRequest{header: h, body: b, status: 400, problem: invalidSignature}
		}},
		{"repeated-signature", func(_ *rand.Rand, ev []byte) badRequest {
			h := signed(ev)
			h.Add("Stripe-Signature", h.Get("Stripe-Signature"))
			return badRequest{header: h, body: ev, status: 400, problem: invalidSignature}
		}},
		{"long-signature", func(rng *rand.Rand, ev []byte) badRequest {
			// Under the 64 KiB header limit: parsed, and matches nothing.
			v := "t=" + fmt.Sprint(time.Now().Unix()) + strings.Repeat(",v1="+strings.Repeat("ab", 32), 700+rng.IntN(100))
			return badRequest{header: sigHeader(v), body: ev, status: 400, problem: invalidSignature}
		}},
		{"oversized-signature", func(rng *rand.Rand, ev []byte) badRequest {
			// Over MaxHeaderBytes: net/http refuses it before orderhook runs.
			v := "t=1," + strings.Repeat("v1=00,", 20000+rng.IntN(20000))
			return badRequest{header: sigHeader(v), body: ev, status: http.StatusRequestHeaderFieldsTooLarge}
		}},
		{"stale-signature", func(rng *rand.Rand, ev []byte) badRequest {
			at := time.Now().Add(-time.Duration(6+rng.IntN(10000)) * time.Minute)
			return badRequest{header: sigHeader(deliver.Signature(at, ev, secret)), body: ev, status: 400, problem: staleSignature}
		}},
		{"future-signature", func(rng *rand.Rand, ev []byte) badRequest {
			at := time.Now().Add(time.Duration(6+rng.IntN(10000)) * time.Minute)
			return badRequest{header: sigHeader(deliver.Signature(at, ev, secret)), body: ev, status: 400, problem: staleSignature}
		}},
		{"truncated-json", func(rng *rand.Rand, ev []byte) badRequest {
			b := ev[:rng.IntN(len(ev)-1)]
			return badRequest{header: signed(b), body: b, status: 400, problem: malformedEvent}
		}},
		{"deep-json", func(rng *rand.Rand, _ []byte) badRequest {
			// Deeper than encoding/json's limit of 10,000 levels.
			depth := 10001 + rng.IntN(150000) // 6 bytes a level: under the 1 MiB limit
			b := []byte(`{"id":"evt_deep","object":"event","type":"customer.created","created":1767225600,"data":{"object":` +
				strings.Repeat(`{"a":`, depth) + `1` + strings.Repeat(`}`, depth) + `}}`)
			return badRequest{header: signed(b), body: b, status: 400, problem: malformedEvent}
		}},
		{"invalid-utf8", func(rng *rand.Rand, ev []byte) badRequest {
			// Invalid bytes in the event id or type: never storable.
			// The envelope's id is its first "id", its type its last "type".
			at := bytes.Index(ev, []byte(`"id":"`)) + len(`"id":"`)
			if rng.IntN(2) == 0 {
				at = bytes.LastIndex(ev, []byte(`"type":"`)) + len(`"type":"`)
			}
			b := slices.Concat(ev[:at], []byte("\xff\xfe\xc3"), ev[at:])
			return badRequest{header: signed(b), body: b, status: 400, problem: malformedEvent}
		}},
		{"binary-body", func(rng *rand.Rand, _ []byte) badRequest {
			b := make([]byte, 1+rng.IntN(4096))
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			return badRequest{header: signed(b), body: b, status: 400, problem: malformedEvent}
		}},
		{"not-an-event", func(rng *rand.Rand, ev []byte) badRequest {
			b := []byte([]string{``, `null`, `[]`, `{}`, `"evt_1"`, `{"id":"evt_1","object":"customer","type":"customer.created","created":1,"data":{"object":{}}}`,
				`{"id":"evt_1","type":"customer.created","created":1,"data":{"object":"cus_1"}}`, `{"id":"evt_1","type":"x","data":{"object":{}}}`,
				string(bytes.Replace(ev, []byte(`"created":`), []byte(`"created":-`), 1))}[rng.IntN(9)])
			return badRequest{header: signed(b), body: b, status: 400, problem: malformedEvent}
		}},
		{"over-limit", func(rng *rand.Rand, ev []byte) badRequest {
			// A real event padded past the 1 MiB limit with whitespace.
			b := append(bytes.Repeat([]byte(" "), 1<<20+rng.IntN(1<<20)), ev...)
			return badRequest{header: signed(b), body: b, status: 413, problem: payloadTooLarge}
		}},
		{"wrong-method", func(rng *rand.Rand, ev []byte) badRequest {
			m := []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodHead}[rng.IntN(6)]
			problem := methodNotAllowed
			if m == http.MethodHead {
				problem = "" // an answer to HEAD has no body
			}
			return badRequest{method: m, header: signed(ev), body: ev, status: 405, problem: problem}
		}},
	}
}

// signed returns the headers of a correct delivery of body.
func signed(body []byte) http.Header {
	return sigHeader(deliver.Signature(time.Now(), body, secret))
}

func sigHeader(v string) http.Header {
	return http.Header{"Stripe-Signature": {v}, "Content-Type": {"application/json"}}
}

// garble returns a random malformed Stripe-Signature value.
func garble(rng *rand.Rand) string {
	now := fmt.Sprint(time.Now().Unix())
	forms := []string{
		"", " ", ",,,", "t=", "v1=", "t=" + now, "t=" + now + ",v1=", "t=" + now + ",v1=zz",
		"t=-5,v1=" + strings.Repeat("0", 64), "t=99999999999999999999,v1=" + strings.Repeat("0", 64),
		"t=" + now + ",t=" + now + ",v1=" + strings.Repeat("0", 64), "garbage", "t:1;v1:2", "t=1,v1=\u00e9\u00e9",
	}
	if rng.IntN(3) > 0 {
		return forms[rng.IntN(len(forms))]
	}
	b := make([]byte, 1+rng.IntN(200))
	for i := range b {
		b[i] = byte(0x20 + rng.IntN(0x5f)) // printable: a header value net/http sends
	}
	return string(b)
}

// problemName returns the orderhook problem name of an answer body, or "".
func problemName(contentType string, body []byte) string {
	if contentType != "application/problem+json" {
		return ""
	}
	var p struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	return strings.TrimPrefix(p.Type, "urn:orderhook:problem:")
}
