package auth

import (
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/testclock"
)

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

// wantThrottled checks err is a *ThrottledError, by address or not, that
// asks to wait wait.
func wantThrottled(t *testing.T, what string, err error, byAddress bool, wait time.Duration) {
	t.Helper()
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, oci.ErrTooManyRequests) {
		t.Fatalf("%s: %v, want a *ThrottledError wrapping oci.ErrTooManyRequests", what, err)
	}
	if te.ByAddress != byAddress {
		t.Errorf("%s: by address %v, want %v", what, te.ByAddress, byAddress)
	}
	if d, ok := oci.RetryAfter(err); !ok || d != wait {
		t.Errorf("%s: retry after %v (%v), want %v", what, d, ok, wait)
	}
}

func TestLimiterPerUsername(t *testing.T) {
	t.Parallel()
	clock := testclock.New(t0)
	l := NewLimiter(LimiterOptions{Now: clock.Now})
	for i := range DefaultFailuresPerUser {
		a, err := l.Begin("erin", addrA)
		if err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		reached := a.End(true)
		if reached != (i == DefaultFailuresPerUser-1) {
			t.Errorf("attempt %d: limit reached %v", i+1, reached)
		}
		clock.Add(time.Second)
	}
	// Ten failures from t0 to t0+9s; now is t0+10s. The oldest leaves the
	// window at t0+60s.
	_, err := l.Begin("erin", addrA)
	wantThrottled(t, "the 11th attempt", err, false, 50*time.Second)
	wantThrottled(t, "Check", l.Check("erin", addrB), false, 50*time.Second)
	if err := l.Check("frank", addrA); err != nil {
		t.Errorf("another username from the same address: %v", err)
	}
	clock.Add(49 * time.Second)
	wantThrottled(t, "a second before the window passes", l.Check("erin", addrA), false, time.Second)
	clock.Add(time.Second)
	a, err := l.Begin("erin", addrA)
	if err != nil {
		t.Fatalf("once the oldest failure left the window: %v", err)
	}
	a.End(false)
	// A success does not clear the failures still in the window; one more
	// failure throttles again, until the next one leaves.
	a, _ = l.Begin("erin", addrA)
	a.End(true)
	wantThrottled(t, "after one more failure", l.Check("erin", addrA), false, time.Second)
}

func TestLimiterPerAddress(t *testing.T) {
	t.Parallel()
	clock := testclock.New(t0)
	l := NewLimiter(LimiterOptions{Now: clock.Now})
	for i := range DefaultFailuresPerClient {
		if i%2 == 0 {
			l.Fail("user"+strconv.Itoa(i), addrA)
		} else {
			a, err := l.Begin("user"+strconv.Itoa(i), addrA)
			if err != nil {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
			a.End(true)
		}
	}
	wantThrottled(t, "a new username from the address", l.Check("someone", addrA), true, time.Minute)
	if err := l.Check("someone", addrB); err != nil {
		t.Errorf("another address: %v", err)
	}
	clock.Add(time.Minute)
	if err := l.Check("someone", addrA); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

// Checks under way count once a key has failed, so a burst of concurrent
// guesses cannot run past the limit; a burst of sign-ins with no failure
// is never held back.
func TestLimiterCountsChecksUnderWay(t *testing.T) {
	t.Parallel()
	clock := testclock.New(t0)
	l := NewLimiter(LimiterOptions{Now: clock.Now, PerUsername: 3})
	var burst []*Attempt
	for i := range 10 {
		a, err := l.Begin("ci", addrA)
		if err != nil {
			t.Fatalf("sign-in %d of a burst without failures: %v", i+1, err)
		}
		burst = append(burst, a)
	}
	for _, a := range burst {
		a.End(false)
	}
	first, _ := l.Begin("erin", addrA)
	second, _ := l.Begin("erin", addrA)
	first.End(true) // one failure, one check under way
	if _, err := l.Begin("erin", addrA); err != nil {
		t.Fatalf("third check: %v", err)
	}
	_, err := l.Begin("erin", addrA)
	wantThrottled(t, "a fourth check while two run after a failure", err, false, time.Second)
	if err := l.Check("erin", addrA); err != nil {
		t.Errorf("Check counts only failures: %v", err)
	}
	second.End(false)
	second.End(true) // a second End does nothing
	if err := l.Check("erin", addrA); err != nil {
		t.Errorf("after a success: %v", err)
	}
}

func TestLimiterKeys(t *testing.T) {
	t.Parallel()
	clock := testclock.New(t0)
	l := NewLimiter(LimiterOptions{Now: clock.Now, PerAddress: 2, MaxKeys: 50})
	// An IPv6 client counts by its /64.
	l.Fail("a", netip.MustParseAddr("2001:db8:1:2::1"))
	l.Fail("b", netip.MustParseAddr("2001:db8:1:2:ffff::9"))
	wantThrottled(t, "the same /64", l.Check("c", netip.MustParseAddr("2001:db8:1:2::77")), true, time.Minute)
	if err := l.Check("c", netip.MustParseAddr("2001:db8:1:3::1")); err != nil {
		t.Errorf("another /64: %v", err)
	}
	// An IPv4-mapped address is its IPv4 address.
	l.Fail("a", addrB)
	l.Fail("b", netip.AddrFrom16(addrB.As16()))
	wantThrottled(t, "IPv4-mapped", l.Check("c", addrB), true, time.Minute)

	// The maps stay bounded.
	for i := range 500 {
		l.Fail("spray"+strconv.Itoa(i), netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	l.mu.Lock()
	users, addrs := len(l.users), len(l.addrs)
	l.mu.Unlock()
	if users > 50 || addrs > 50 {
		t.Errorf("%d usernames and %d addresses tracked, want at most 50 each", users, addrs)
	}
	// Entries whose failures left the window are dropped.
	clock.Add(2 * time.Minute)
	l.Fail("late", addrA)
	l.mu.Lock()
	users, addrs = len(l.users), len(l.addrs)
	l.mu.Unlock()
	if users != 1 || addrs != 1 {
		t.Errorf("%d usernames and %d addresses tracked after the window, want 1 each", users, addrs)
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, c := range []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want         string
	}{
		{"no proxy", "192.0.2.1:5555", nil, nil, "192.0.2.1"},
		{"X-Forwarded-For is ignored without trusted proxies", "192.0.2.1:5555", []string{"203.0.113.9"}, nil, "192.0.2.1"},
		{"X-Forwarded-For from an untrusted peer", "192.0.2.1:5555", []string{"203.0.113.9"}, proxies, "192.0.2.1"},
		{"a trusted proxy", "10.1.2.3:5555", []string{"203.0.113.9"}, proxies, "203.0.113.9"},
		{"the rightmost untrusted hop", "10.1.2.3:5555", []string{"198.51.100.7, 203.0.113.9, 10.9.9.9"}, proxies, "203.0.113.9"},
		{"several header lines", "10.1.2.3:5555", []string{"198.51.100.7", "203.0.113.9"}, proxies, "203.0.113.9"},
		{"a forged leftmost hop does not win", "10.1.2.3:5555", []string{"10.0.0.1, 203.0.113.9"}, proxies, "203.0.113.9"},
		{"only proxies", "10.1.2.3:5555", []string{"10.0.0.1"}, proxies, "10.0.0.1"},
		{"garbage stops the walk", "10.1.2.3:5555", []string{"198.51.100.7, nonsense"}, proxies, "10.1.2.3"},
		{"no header", "10.1.2.3:5555", nil, proxies, "10.1.2.3"},
		{"IPv6 peer", "[::1]:5555", []string{"2001:db8::5"}, proxies, "2001:db8::5"},
		{"unparsable peer", "somewhere", []string{"203.0.113.9"}, proxies, "invalid IP"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ClientAddr(c.remote, c.xff, c.trusted); got.String() != c.want {
				t.Errorf("ClientAddr(%q, %q) = %s, want %s", c.remote, c.xff, got, c.want)
			}
		})
	}
}
