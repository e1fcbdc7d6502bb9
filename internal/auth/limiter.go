package auth

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// Defaults of LimiterOptions.
const (
	DefaultSignInWindow      = time.Minute
	DefaultFailuresPerUser   = 10
	DefaultFailuresPerClient = 30
	defaultMaxLimiterKeys    = 100_000
)

// LimiterOptions configure a Limiter. Zero values mean the defaults.
type LimiterOptions struct {
	// Window is how long a failed sign-in counts (default 1 minute).
	Window time.Duration
	// PerUsername is how many failed sign-ins one username may have in a
	// window before every sign-in as it is refused (default 10).
	PerUsername int
	// PerAddress is the same for one client address, over any usernames
	// (default 30).
	PerAddress int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxKeys bounds how many usernames, and how many addresses, are
	// tracked at once (default 100,000 each).
	MaxKeys int
}

// Limiter counts failed sign-ins per username and per client address in a
// sliding window. Once a username or an address has its limit of failures
// in the last window, every sign-in as it or from it is refused, with the
// right credentials too, until enough of them are older than the window.
// Refused attempts are not counted, so a client that keeps trying is let
// in again when the window passes.
//
// Counts live in this process: replicas count separately, so a client
// spreading its attempts over n replicas gets up to n times the limits.
// An IPv6 client counts by its /64, which one client usually controls.
// It is safe for concurrent use.
type Limiter struct {
	opts LimiterOptions

	mu      sync.Mutex
	users   map[string]*failures
	addrs   map[string]*failures
	sweptAt time.Time
}

// failures are one key's failed sign-ins, oldest first, and the checks
// under way for it.
type failures struct {
	at      []time.Time
	pending int
}

// NewLimiter returns a Limiter with opts.
func NewLimiter(opts LimiterOptions) *Limiter {
	if opts.Window <= 0 {
		opts.Window = DefaultSignInWindow
	}
	if opts.PerUsername <= 0 {
		opts.PerUsername = DefaultFailuresPerUser
	}
	if opts.PerAddress <= 0 {
		opts.PerAddress = DefaultFailuresPerClient
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = defaultMaxLimiterKeys
	}
	return &Limiter{opts: opts, users: map[string]*failures{}, addrs: map[string]*failures{}}
}

// ThrottledError refuses a sign-in for a username or from an address that
// failed too often. It wraps oci.ErrTooManyRequests and carries when to try
// again (oci.RetryAfter).
type ThrottledError struct {
	// ByAddress is true when the address, not the username, is throttled.
	ByAddress bool
	wait      time.Duration
}

func (e *ThrottledError) Error() string {
	who := "this username"
	if e.ByAddress {
		who = "your address"
	}
	return fmt.Sprintf("%s: too many failed sign-ins for %s; try again in %s",
		oci.ErrTooManyRequests, who, e.wait.Round(time.Second))
}

func (e *ThrottledError) Unwrap() error { return oci.ErrTooManyRequests }

// RetryAfter is how long until a sign-in may be tried again.
func (e *ThrottledError) RetryAfter() time.Duration { return e.wait }

// Check returns a *ThrottledError when username or from has its limit of
// failures in the current window, else nil. It records nothing.
func (l *Limiter) Check(username string, from netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.check(userKey(username), addrKey(from), l.opts.Now(), false)
}

// Begin starts a check of a credential for username from an address: it
// refuses as Check does, also counting the checks already under way once a
// key has failed (so a burst of concurrent guesses cannot overshoot the
// limit by more than the checks that run at once), and otherwise returns
// an Attempt that must be ended.
func (l *Limiter) Begin(username string, from netip.Addr) (*Attempt, error) {
	u, a := userKey(username), addrKey(from)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Now()
	if err := l.check(u, a, now, true); err != nil {
		return nil, err
	}
	l.entry(l.users, u, now).pending++
	l.entry(l.addrs, a, now).pending++
	return &Attempt{l: l, user: u, addr: a}, nil
}

// Attempt is a credential check under way.
type Attempt struct {
	l          *Limiter
	user, addr string
	ended      bool
}

// End ends the attempt, counting a failure when failed. It reports whether
// this failure made the username or the address reach its limit. Ending an
// attempt twice does nothing.
func (a *Attempt) End(failed bool) (limitReached bool) {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.ended {
		return false
	}
	a.ended = true
	return l.record(a.user, a.addr, l.opts.Now(), failed, true)
}

// Fail counts a failed sign-in that was not begun with Begin, such as an
// unknown token secret: such checks are cheap, so they are not held back
// while others run. It reports whether the username or the address
// reached its limit.
func (l *Limiter) Fail(username string, from netip.Addr) (limitReached bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.record(userKey(username), addrKey(from), l.opts.Now(), true, false)
}

// record ends a check of user from addr (one under way when begun) and
// counts its failure. It must be called with mu held.
func (l *Limiter) record(user, addr string, now time.Time, failed, begun bool) (limitReached bool) {
	for _, k := range []struct {
		m     map[string]*failures
		key   string
		limit int
	}{{l.users, user, l.opts.PerUsername}, {l.addrs, addr, l.opts.PerAddress}} {
		f := l.entry(k.m, k.key, now)
		if begun {
			f.pending--
		}
		if failed {
			f.expire(now.Add(-l.opts.Window))
			f.at = append(f.at, now)
			if len(f.at) == k.limit {
				limitReached = true
			}
		}
		if f.pending <= 0 && len(f.at) == 0 {
			delete(k.m, k.key)
		}
	}
	return limitReached
}

// check refuses when either key is at its limit; with pending, checks
// under way count too for a key that has failed. It must be called with
// mu held.
func (l *Limiter) check(user, addr string, now time.Time, pending bool) error {
	if wait := l.wait(l.users[user], l.opts.PerUsername, now, pending); wait > 0 {
		return &ThrottledError{wait: wait}
	}
	if wait := l.wait(l.addrs[addr], l.opts.PerAddress, now, pending); wait > 0 {
		return &ThrottledError{ByAddress: true, wait: wait}
	}
	return nil
}

// wait returns how long until f has room under limit, 0 when it has now.
func (l *Limiter) wait(f *failures, limit int, now time.Time, pending bool) time.Duration {
	if f == nil {
		return 0
	}
	f.expire(now.Add(-l.opts.Window))
	n := len(f.at)
	switch {
	case n >= limit:
		// Room comes when the failure limit-from-last leaves the window.
		return f.at[n-limit].Add(l.opts.Window).Sub(now)
	case pending && n > 0 && n+f.pending >= limit:
		return time.Second // the checks under way decide; ask again soon
	}
	return 0
}

// expire drops failures at or before cutoff.
func (f *failures) expire(cutoff time.Time) {
	i := 0
	for i < len(f.at) && !f.at[i].After(cutoff) {
		i++
	}
	if i > 0 {
		f.at = append(f.at[:0], f.at[i:]...)
	}
}

// entry returns m's entry for key, making room for a new one when m is
// full: first by dropping entries with nothing in the window, then, should
// that not be enough, entries with no check under way.
func (l *Limiter) entry(m map[string]*failures, key string, now time.Time) *failures {
	if f, ok := m[key]; ok {
		return f
	}
	if now.Sub(l.sweptAt) >= l.opts.Window || len(m) >= l.opts.MaxKeys {
		l.sweep(now)
	}
	for k, f := range m {
		if len(m) < l.opts.MaxKeys {
			break
		}
		if f.pending == 0 {
			delete(m, k)
		}
	}
	f := &failures{}
	m[key] = f
	return f
}

// sweep drops the entries of both maps that hold nothing any more.
func (l *Limiter) sweep(now time.Time) {
	l.sweptAt = now
	cutoff := now.Add(-l.opts.Window)
	for _, m := range []map[string]*failures{l.users, l.addrs} {
		for k, f := range m {
			f.expire(cutoff)
			if len(f.at) == 0 && f.pending <= 0 {
				delete(m, k)
			}
		}
	}
}

// maxUsernameKey bounds the bytes of a username kept as a key.
const maxUsernameKey = 256

func userKey(username string) string {
	if len(username) > maxUsernameKey {
		username = username[:maxUsernameKey]
	}
	return username
}

// addrKey is the key of a client address: the address itself for IPv4,
// its /64 for IPv6; every unknown address shares one key.
func addrKey(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is6():
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}

// ClientAddr returns the address of the client behind a request: the
// peer's (from remoteAddr, "host:port"), unless the peer is one of the
// trusted proxies, in which case it is the rightmost X-Forwarded-For
// address (forwardedFor holds the header's values, comma-separated lists)
// that is not itself a trusted proxy. With no trusted proxies the header
// is ignored, since any client can send it. An unparsable hop stops the
// walk at the last trusted one.
func ClientAddr(remoteAddr string, forwardedFor []string, trusted []netip.Prefix) netip.Addr {
	peer := parseHost(remoteAddr)
	if !isTrusted(peer, trusted) {
		return peer
	}
	var hops []string
	for _, v := range forwardedFor {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break
		}
		client = a.Unmap()
		if !isTrusted(client, trusted) {
			break
		}
	}
	return client
}

func parseHost(hostport string) netip.Addr {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(hostport); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
