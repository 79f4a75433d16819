package webhook

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
)

// signatureHeader is a parsed Stripe-Signature header:
// "t=<unix seconds>,v1=<hex>[,v1=<hex>…]", possibly with other schemes (v0)
// that are ignored.
type signatureHeader struct {
	timestamp  int64    // t=, Unix seconds
	signatures []string // the v1= values that are hex, in order
}

// maxTimestampDigits bounds t= so that it always fits an int64.
const maxTimestampDigits = 18

// parseSignatureHeader parses a Stripe-Signature header. It needs t= exactly
// once as a non-negative integer and at least one hex v1= value; it ignores
// other keys and v1= values that are not hex (they can never match), as
// Stripe's libraries do. Its errors describe the problem without quoting the
// header, as what the header "is" or "has".
func parseSignatureHeader(header string) (signatureHeader, error) {
	if strings.TrimSpace(header) == "" {
		return signatureHeader{}, errors.New("is empty")
	}
	var (
		sh            signatureHeader
		sawT, sawV1   bool
		hexSignatures []string
	)
	for i, item := range strings.Split(header, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(item), "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case !ok || key == "":
			return signatureHeader{}, fmt.Errorf("has an element %d that is not key=value", i+1)
		case key == "t" && sawT:
			return signatureHeader{}, errors.New("has more than one t=")
		case key == "t":
			t, err := parseTimestamp(value)
			if err != nil {
				return signatureHeader{}, err
			}
			sh.timestamp, sawT = t, true
		case key == "v1":
			sawV1 = true
			if _, err := hex.DecodeString(value); err == nil && value != "" {
				hexSignatures = append(hexSignatures, value)
			}
		}
	}
	switch {
	case !sawT:
		return signatureHeader{}, errors.New("has no t= timestamp")
	case !sawV1:
		return signatureHeader{}, errors.New("has no v1= signature")
	case len(hexSignatures) == 0:
		return signatureHeader{}, errors.New("has no v1= signature in hex")
	}
	sh.signatures = hexSignatures
	return sh, nil
}

// parseTimestamp reads t=: decimal digits only, no sign.
func parseTimestamp(s string) (int64, error) {
	if s == "" || len(s) > maxTimestampDigits || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, errors.New("has a t= that is not a Unix time in seconds")
	}
	return strconv.ParseInt(s, 10, 64) // cannot fail: at most 18 digits
}

// canonical renders sh as the header Stripe's library verifies: exactly what
// was parsed, so that the library checks the timestamp this package checks.
func (sh signatureHeader) canonical() string {
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(sh.timestamp, 10))
	for _, s := range sh.signatures {
		b.WriteString(",v1=")
		b.WriteString(s)
	}
	return b.String()
}

// time returns the signature timestamp.
func (sh signatureHeader) time() time.Time { return time.Unix(sh.timestamp, 0) }

// signatureHeaderName is the header Stripe signs deliveries with.
const signatureHeaderName = "Stripe-Signature"

// readSignature parses the request's Stripe-Signature header. It returns an
// invalid-signature problem when the header is missing, repeated or
// malformed.
func readSignature(values []string) (signatureHeader, error) {
	switch len(values) {
	case 0:
		return signatureHeader{}, problemf(kindInvalidSignature, nil,
			"the request has no Stripe-Signature header: sign it as Stripe does (t=…,v1=…), e.g. with `stripe listen` or `orderhook send`")
	case 1:
	default:
		return signatureHeader{}, problemf(kindInvalidSignature, nil,
			"the request has %d Stripe-Signature headers: send exactly one", len(values))
	}
	sh, err := parseSignatureHeader(values[0])
	if err != nil {
		return signatureHeader{}, problemf(kindInvalidSignature, nil,
			"the Stripe-Signature header is malformed: it %s; expected t=<unix seconds>,v1=<hex HMAC-SHA256>", err.Error())
	}
	return sh, nil
}

// verify checks the signature over the raw body against every configured
// secret and returns the index of the first that matches, or -1. Only when a
// secret matches is the timestamp checked: it must be within the tolerance of
// now in both directions. It returns an invalid-signature problem when no secret
// matches and a stale-signature problem when the timestamp is out of range.
func (h *Handler) verify(body []byte, sh signatureHeader) (int, error) {
	header := sh.canonical()
	for i, secret := range h.secrets {
		// The library checks the tolerance before the signature and only
		// against time.Now in the past; the tolerance is checked below.
		if stripewebhook.ValidatePayloadIgnoringTolerance(body, header, secret) != nil {
			continue
		}
		return i, h.checkTimestamp(sh.time())
	}
	return -1, problemf(kindInvalidSignature, nil,
		"no configured signing secret matches a v1 signature of the body: check that the endpoint's whsec_ secret is configured and that the body reaches orderhook unmodified")
}

// checkTimestamp returns a stale-signature problem when t is further than the
// tolerance from now, in the past or in the future.
func (h *Handler) checkTimestamp(t time.Time) error {
	now := h.now()
	switch {
	case now.Sub(t) > h.tolerance:
		return problemf(kindStaleSignature, nil,
			"the signature timestamp is %s in the past, beyond the tolerance of %s: resend the event (Stripe retries with a fresh signature) and check the clocks",
			distance(now, t), h.tolerance)
	case t.Sub(now) > h.tolerance:
		return problemf(kindStaleSignature, nil,
			"the signature timestamp is %s in the future, beyond the tolerance of %s: check the sender's and this server's clocks",
			distance(t, now), h.tolerance)
	}
	return nil
}

// farDistance is the distance past which a detail says how far a
// timestamp is no more precisely: a time.Duration saturates at about 292
// years, and a t= that far off is no clock skew (milliseconds sent as
// seconds, say).
const (
	farYears    = 100
	farDistance = farYears * 365 * 24 * time.Hour
)

// distance says how much later than earlier later is, in whole seconds
// rounded up, so that a distance beyond the tolerance never reads as the
// tolerance itself; "more than 100 years" past farDistance.
func distance(later, earlier time.Time) string {
	d := later.Sub(earlier) // saturates, never wraps
	if d > farDistance {
		return fmt.Sprintf("more than %d years", farYears)
	}
	if whole := d.Truncate(time.Second); whole != d {
		d = whole + time.Second
	}
	return d.String()
}
