package webhook

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
)

const hexSig = "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"

func TestParseSignatureHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, header string
		want         signatureHeader
		err          string
	}{
		{"stripe", "t=1492774577,v1=" + hexSig, signatureHeader{1492774577, []string{hexSig}}, ""},
		{"rolling secrets", "t=1,v1=" + hexSig + ",v1=00ff", signatureHeader{1, []string{hexSig, "00ff"}}, ""},
		{"other schemes ignored", "t=1,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39,v1=" + hexSig + ",scheme=x", signatureHeader{1, []string{hexSig}}, ""},
		{"spaces around elements", " t = 7 , v1 = 00ff ", signatureHeader{7, []string{"00ff"}}, ""},
		{"non-hex v1 skipped", "t=1,v1=zz,v1=00ff", signatureHeader{1, []string{"00ff"}}, ""},
		{"zero time", "t=0,v1=00", signatureHeader{0, []string{"00"}}, ""},
		{"empty", "", signatureHeader{}, "is empty"},
		{"blank", "  ", signatureHeader{}, "is empty"},
		{"no t", "v1=" + hexSig, signatureHeader{}, "has no t= timestamp"},
		{"t twice", "t=1,t=2,v1=00", signatureHeader{}, "more than one t="},
		{"t not integer", "t=abc,v1=00", signatureHeader{}, "not a Unix time"},
		{"t fraction", "t=1.5,v1=00", signatureHeader{}, "not a Unix time"},
		{"t negative", "t=-1,v1=00", signatureHeader{}, "not a Unix time"},
		{"t plus sign", "t=+1,v1=00", signatureHeader{}, "not a Unix time"},
		{"t empty", "t=,v1=00", signatureHeader{}, "not a Unix time"},
		{"t too long", "t=9999999999999999999,v1=00", signatureHeader{}, "not a Unix time"},
		{"no v1", "t=1,v0=00", signatureHeader{}, "has no v1= signature"},
		{"v1 not hex", "t=1,v1=xyz", signatureHeader{}, "no v1= signature in hex"},
		{"v1 empty", "t=1,v1=", signatureHeader{}, "no v1= signature in hex"},
		{"garbage", "garbage", signatureHeader{}, "has an element 1 that is not key=value"},
		{"empty element", "t=1,,v1=00", signatureHeader{}, "has an element 2 that is not key=value"},
		{"empty key", "t=1,=00,v1=00", signatureHeader{}, "has an element 2 that is not key=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseSignatureHeader(tc.header)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCanonicalHeaderVerifiesLikeStripe(t *testing.T) {
	t.Parallel()
	payload := []byte(`{"id":"evt_1"}`)
	signed := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
		Payload: payload, Secret: "whsec_a", Timestamp: time.Unix(1700000000, 0),
	})
	sh, err := parseSignatureHeader("v0=00," + signed.Header + ",x=y")
	require.NoError(t, err)
	require.Equal(t, signed.Header, sh.canonical())
	require.NoError(t, stripewebhook.ValidatePayloadIgnoringTolerance(payload, sh.canonical(), "whsec_a"))
	require.Equal(t, time.Unix(1700000000, 0), sh.time())
}

func FuzzSignatureHeader(f *testing.F) {
	for _, s := range []string{
		"t=1492774577,v1=" + hexSig,
		"t=1,v1=" + hexSig + ",v1=00ff,v0=ab",
		"t=1,t=2,v1=00", "t=,v1=", "v1=00", "t=1", "=", ",", "t==1,v1==00",
		"t=99999999999999999999,v1=00", " t = 1 , v1 = 00 ", "t=1,v1=0g", "\x00t=1,v1=00",
	} {
		f.Add(s)
	}
	payload := []byte(`{"id":"evt_1"}`)
	f.Fuzz(func(t *testing.T, header string) {
		sh, err := parseSignatureHeader(header)
		if err != nil {
			return
		}
		require.GreaterOrEqual(t, sh.timestamp, int64(0))
		require.NotEmpty(t, sh.signatures)
		for _, s := range sh.signatures {
			_, err := hex.DecodeString(s)
			require.NoError(t, err)
			require.NotEmpty(t, s)
		}
		again, err := parseSignatureHeader(sh.canonical())
		require.NoError(t, err, "the canonical form parses")
		require.Equal(t, sh, again)
		err = stripewebhook.ValidatePayloadIgnoringTolerance(payload, sh.canonical(), "whsec_fuzz")
		require.NotErrorIs(t, err, stripewebhook.ErrInvalidHeader, "Stripe's parser accepts what this one accepts")
		require.NotErrorIs(t, err, stripewebhook.ErrNotSigned)
		require.False(t, strings.Contains(sh.canonical(), ",,"))
	})
}

func TestCheckTimestampDetail(t *testing.T) {
	t.Parallel()
	const tolerance = 5 * time.Minute
	second := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	late := second.Add(900 * time.Millisecond) // a clock between two seconds
	for _, tc := range []struct {
		name   string
		now    time.Time
		t      int64 // t=, Unix seconds
		detail string
	}{
		{"future, a second beyond", second, second.Unix() + 301, "is 5m1s in the future, beyond the tolerance of 5m0s"},
		{"future, less than a second beyond", late, second.Unix() + 301, "is 5m1s in the future, beyond the tolerance of 5m0s"},
		{"future, at the tolerance", second, second.Unix() + 300, ""},
		{"past, less than a second beyond", late, second.Unix() - 300, "is 5m1s in the past, beyond the tolerance of 5m0s"},
		{"past, within", late, second.Unix() - 299, ""},
		{"past, at the tolerance", second, second.Unix() - 300, ""},
		{"the largest t=", late, 999999999999999999, "is more than 100 years in the future, beyond the tolerance of 5m0s"},
		{"milliseconds", second, second.UnixMilli(), "is more than 100 years in the future"},
		{"1970", second, 0, "is 492324h0m0s in the past"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &Handler{tolerance: tolerance, now: func() time.Time { return tc.now }}
			err := h.checkTimestamp(time.Unix(tc.t, 0))
			if tc.detail == "" {
				require.NoError(t, err)
				return
			}
			var pe *problemError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, kindStaleSignature, pe.kind)
			require.Contains(t, pe.detail, tc.detail)
			require.NotContains(t, pe.detail, "is 5m0s in", "a distance beyond the tolerance never reads as the tolerance")
			require.NotContains(t, pe.detail, "-", "no negative distance")
		})
	}
}
