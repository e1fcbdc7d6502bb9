package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// upstreamFailure is what a registry client learns when an upstream of a
// virtual registry failed: the upstream's name and a generic reason. It
// matches the oci sentinel the failure maps to and keeps its Retry-After.
type upstreamFailure struct {
	msg        string
	sentinel   error
	retryAfter time.Duration
}

func (e *upstreamFailure) Error() string             { return e.msg }
func (e *upstreamFailure) Unwrap() error             { return e.sentinel }
func (e *upstreamFailure) RetryAfter() time.Duration { return e.retryAfter }

// networkSentinels are the sentinels of failures to talk to an upstream,
// most specific first.
var networkSentinels = []error{oci.ErrTooManyRequests, oci.ErrTimeout, oci.ErrManifestInvalid, oci.ErrUnavailable}

// publicError turns the failure err of upstream u into what a registry
// client may see. An upstream is an owner's choice: an error that echoed
// its URL, the addresses dproxy dialled (a redirect's, a token realm's)
// or the network error would let the owner probe the network dproxy runs
// in. Those go to the log; the client gets the upstream's name and a
// generic reason. Errors that did not come from talking to the upstream
// are only prefixed with its name.
func (v *Virtual) publicError(ctx context.Context, u store.VirtualUpstream, err error) error {
	var ue *upstream.Error
	fromUpstream := errors.As(err, &ue)
	var sentinel error
	for _, s := range networkSentinels {
		if errors.Is(err, s) {
			sentinel = s
			break
		}
	}
	if !fromUpstream && (sentinel == nil || sentinel == oci.ErrManifestInvalid) {
		return fmt.Errorf("upstream %s: %w", u.Name, err)
	}
	if log := v.opts.Logger; log != nil {
		log.WarnContext(ctx, "virtual registry upstream failed", "upstream", u.Name, "upstream_id", u.ID, "url", u.URL, "err", err)
	}
	if sentinel == nil {
		sentinel = oci.ErrUnavailable
	}
	f := &upstreamFailure{sentinel: sentinel}
	f.retryAfter, _ = oci.RetryAfter(err)
	switch {
	case fromUpstream:
		f.msg = "upstream " + u.Name + ": " + ue.Public()
	case sentinel == oci.ErrTooManyRequests:
		f.msg = "upstream " + u.Name + ": the upstream's rate limit is exhausted"
	case sentinel == oci.ErrTimeout:
		f.msg = "upstream " + u.Name + ": the upstream did not answer in time"
	default:
		f.msg = "upstream " + u.Name + ": the upstream is unavailable"
	}
	return f
}
