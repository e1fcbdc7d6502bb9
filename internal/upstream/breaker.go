package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/netpolicy"
	"github.com/dproxy/dproxy/internal/oci"
)

// ErrCircuitOpen is the cause of a request refused without being sent
// because the upstream is failing (see Options.BreakerBackoff). Errors
// matching it match oci.ErrUnavailable too.
var ErrCircuitOpen = errors.New("the upstream is failing: request not sent")

// maxBreakerBackoff bounds the back-off between probes of a failing upstream.
const maxBreakerBackoff = 30 * time.Second

// breaker is the circuit breaker of one upstream (one Client: one
// host:port; the outages it sees, refused connections, 5xx, timeouts and
// token-service failures, are not per credential, and the per-credential
// 429 has its own back-off). It opens when a request ends in such a
// failure. While open, requests of callers with a cached copy
// (WithFallback) fail at once with ErrCircuitOpen, so the copy is served
// without waiting; once the back-off has passed, the next of them (still
// refused) starts one probe in the background. A probe that reaches the
// upstream closes the breaker; one that fails doubles the back-off, up to
// maxBreakerBackoff. A caller with nothing cached has nothing to serve
// instead: its request is sent once, without retries, and a failure says
// since when the upstream fails; a success closes the breaker too.
type breaker struct {
	mu      sync.Mutex
	open    bool
	since   time.Time // when the upstream started failing
	until   time.Time // no probe before
	backoff time.Duration
	probing bool
	last    error // the failure that opened or kept the breaker open
}

// fallbackKey marks a context whose caller has a cached copy to serve.
type fallbackKey struct{}

// WithFallback returns ctx marked for a caller that has cached content to
// serve when the request fails: the request is sent once, without
// retries or back-off, so the cached copy is served after at most one
// failed attempt.
func WithFallback(ctx context.Context) context.Context {
	return context.WithValue(ctx, fallbackKey{}, true)
}

func hasFallback(ctx context.Context) bool {
	v, _ := ctx.Value(fallbackKey{}).(bool)
	return v
}

// outage reports whether err, the end of a request, says the upstream
// itself is failing: no answer (other than a refused address or a caller
// that went away), a timeout, or 500/502/503/504 (of the registry or its
// token service).
func outage(err error) bool {
	var e *Error
	if !errors.As(err, &e) || errors.Is(err, ErrCircuitOpen) {
		return false
	}
	switch e.Status {
	case 0:
		return e.Err != nil && !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, netpolicy.ErrNotAllowed)
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// admit says whether the breaker is open, and returns the error refusing
// the request of a caller WithFallback while it is (starting a probe when
// one is due).
func (c *Client) admit(ctx context.Context, o op) (open bool, refused error) {
	if c.opts.BreakerBackoff < 0 {
		return false, nil
	}
	b := &c.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return false, nil
	}
	if !hasFallback(ctx) {
		return true, nil
	}
	now := c.opts.Now()
	if !b.probing && !now.Before(b.until) {
		b.probing = true
		c.wg.Add(1)
		go c.probe()
	}
	sentinel := oci.ErrUnavailable
	if errors.Is(b.last, oci.ErrTimeout) {
		sentinel = oci.ErrTimeout
	}
	return true, o.error(sentinel, 0, fmt.Sprintf("%s is failing since %s (%v); cached content is served without asking it until a probe reaches it",
		c.host, b.since.UTC().Format(time.RFC3339), b.last), ErrCircuitOpen)
}

// failingSince adds to err, the failure of a request sent while the
// breaker was open, since when the upstream fails.
func (c *Client) failingSince(err error) error {
	var e *Error
	if !errors.As(err, &e) || !outage(err) {
		return err
	}
	since, failing := c.Failing()
	if !failing {
		return err
	}
	msg := fmt.Sprintf("%s is failing since %s", c.host, since.UTC().Format(time.RFC3339))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	e.Message = msg
	return e
}

// result records how a request ended: an answer of the upstream other
// than an outage (a success, a 404, a 401, a 429) closes the breaker, an
// outage opens it (or keeps it open).
func (c *Client) result(err error) {
	if c.opts.BreakerBackoff < 0 {
		return
	}
	var e *Error
	switch {
	case err == nil:
		c.closeBreaker()
	case outage(err):
		c.openBreaker(err, false)
	case errors.As(err, &e) && e.Status != 0:
		c.closeBreaker()
	}
}

// openBreaker opens the breaker after err, or, after a failed probe,
// doubles its back-off.
func (c *Client) openBreaker(err error, probed bool) {
	b := &c.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	now := c.opts.Now()
	b.last = err
	switch {
	case !b.open:
		b.open, b.since, b.backoff = true, now, c.opts.BreakerBackoff
		c.log.Warn("upstream failing: requests fail at once (cached content is served) until a probe reaches it",
			"host", c.host, "backoff", b.backoff, "err", err)
		c.opts.Metrics.UpstreamBreaker(c.host, true)
	case probed:
		b.backoff = min(2*b.backoff, max(maxBreakerBackoff, c.opts.BreakerBackoff))
	}
	b.until = now.Add(b.backoff)
}

func (c *Client) closeBreaker() {
	b := &c.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return
	}
	c.log.Info("upstream reachable again", "host", c.host, "failing_since", b.since)
	b.open, b.last = false, nil
	c.opts.Metrics.UpstreamBreaker(c.host, false)
}

// probe asks the upstream's API root (GET /v2/, no credentials): any
// answer below 500 means it serves again.
func (c *Client) probe() {
	defer c.wg.Done()
	o := c.op("probe", "ping", "", "")
	err := c.ping(o)
	c.breaker.mu.Lock()
	c.breaker.probing = false
	c.breaker.mu.Unlock()
	if err == nil {
		c.closeBreaker()
		return
	}
	c.log.Debug("upstream probe failed", "host", c.host, "err", err)
	c.openBreaker(err, true)
}

func (c *Client) ping(o op) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ConnectTimeout+c.opts.ResponseHeaderTimeout)
	defer cancel()
	u := *c.base
	u.Path = c.base.Path + "/v2/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return o.error(oci.ErrUnavailable, 0, "build request", err)
	}
	if c.opts.UserAgent != "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.opts.Metrics.UpstreamRequest(http.MethodGet, "ping", 0)
		return o.transportError(err)
	}
	c.opts.Metrics.UpstreamRequest(http.MethodGet, "ping", res.StatusCode)
	drain(res)
	if res.StatusCode >= 500 {
		return o.error(oci.ErrUnavailable, res.StatusCode, "", nil)
	}
	return nil
}

// Failing reports whether the breaker is open, and since when.
func (c *Client) Failing() (since time.Time, failing bool) {
	c.breaker.mu.Lock()
	defer c.breaker.mu.Unlock()
	return c.breaker.since, c.breaker.open
}

// Close waits for a probe in progress.
func (c *Client) Close() { c.wg.Wait() }
