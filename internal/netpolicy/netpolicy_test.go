package netpolicy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/testdns"
)

func mustNew(t *testing.T, allow ...string) *Policy {
	t.Helper()
	p, err := New(allow, testdns.New().Resolver())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckDefaultRanges(t *testing.T) {
	t.Parallel()
	p := mustNew(t)
	for _, tc := range []struct {
		addr   string
		range_ string // the refused range named; "" = allowed
	}{
		{"0.0.0.0", "0.0.0.0/8"},
		{"0.1.2.3", "0.0.0.0/8"},
		{"10.0.0.1", "10.0.0.0/8"},
		{"10.255.255.255", "10.0.0.0/8"},
		{"100.64.0.1", "100.64.0.0/10"},
		{"100.127.255.254", "100.64.0.0/10"},
		{"127.0.0.1", "127.0.0.0/8"},
		{"127.0.0.2", "127.0.0.0/8"},
		{"169.254.169.254", "169.254.0.0/16"},
		{"172.16.0.1", "172.16.0.0/12"},
		{"172.31.255.255", "172.16.0.0/12"},
		{"192.0.0.170", "192.0.0.0/24"},
		{"192.168.1.1", "192.168.0.0/16"},
		{"198.18.0.1", "198.18.0.0/15"},
		{"224.0.0.1", "224.0.0.0/4"},
		{"239.255.255.250", "224.0.0.0/4"},
		{"240.0.0.1", "240.0.0.0/4"},
		{"255.255.255.255", "240.0.0.0/4"},
		{"::", "::/128"},
		{"::1", "::1/128"},
		{"::127.0.0.1", "::/96"},
		{"fc00::1", "fc00::/7"},
		{"fd12:3456::1", "fc00::/7"},
		{"fe80::1", "fe80::/10"},
		{"fe80::1%eth0", "fe80::/10"},
		{"fec0::1", "fec0::/10"},
		{"ff02::1", "ff00::/8"},
		{"64:ff9b:1::1", "64:ff9b:1::/48"},
		// IPv4-mapped IPv6 is the IPv4 address it carries.
		{"::ffff:127.0.0.1", "127.0.0.0/8"},
		{"::ffff:10.1.2.3", "10.0.0.0/8"},
		{"::ffff:169.254.169.254", "169.254.0.0/16"},
		{"::ffff:0.0.0.0", "0.0.0.0/8"},
		// NAT64 and 6to4 addresses carrying a refused IPv4 address.
		{"64:ff9b::7f00:1", "127.0.0.0/8"},
		{"64:ff9b::a9fe:a9fe", "169.254.0.0/16"},
		{"2002:a00:1::1", "10.0.0.0/8"},
		// The rest of the internet.
		{"8.8.8.8", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"192.0.2.10", ""},
		{"198.20.0.1", ""},
		{"223.255.255.255", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},
		{"2002:808:808::1", ""},
		{"2606:4700::1111", ""},
		{"fbff:ffff::1", ""},
	} {
		err := p.Check(netip.MustParseAddr(tc.addr))
		if tc.range_ == "" {
			if err != nil {
				t.Errorf("Check(%s) = %v, want allowed", tc.addr, err)
			}
			continue
		}
		var ae *AddrError
		if !errors.As(err, &ae) || !errors.Is(err, ErrNotAllowed) || ae.Range.String() != tc.range_ {
			t.Errorf("Check(%s) = %v, want refused as in %s", tc.addr, err, tc.range_)
			continue
		}
		for _, want := range []string{"upstream address not allowed", netip.MustParseAddr(tc.addr).String(), tc.range_, Flag} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Check(%s): message %q lacks %q", tc.addr, err, want)
			}
		}
	}
}

func TestCheckAllowOverrides(t *testing.T) {
	t.Parallel()
	p := mustNew(t, "127.0.0.2/32", "10.1.0.0/16", "fd00::/8", "::ffff:192.168.7.0/120", "169.254.169.254")
	for _, tc := range []struct {
		addr    string
		allowed bool
	}{
		{"127.0.0.2", true},
		{"::ffff:127.0.0.2", true}, // the mapped form of an allowed address
		{"64:ff9b::7f00:2", true},  // NAT64 form of an allowed address
		{"127.0.0.1", false},
		{"127.0.0.3", false},
		{"10.1.200.3", true},
		{"10.2.0.1", false},
		{"fd00::1", true},
		{"fc00::1", false},
		{"192.168.7.9", true}, // an IPv4-mapped range allows its IPv4 addresses
		{"192.168.8.1", false},
		{"169.254.169.254", true}, // a bare address is a /32
		{"169.254.169.253", false},
		{"8.8.8.8", true},
	} {
		if err := p.Check(netip.MustParseAddr(tc.addr)); (err == nil) != tc.allowed {
			t.Errorf("Check(%s) = %v, want allowed %v", tc.addr, err, tc.allowed)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.2/32":        "127.0.0.2/32",
		" 10.1.2.3/16 ":       "10.1.0.0/16",
		"10.1.2.3":            "10.1.2.3/32",
		"fd00::1/8":           "fd00::/8",
		"::1":                 "::1/128",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"::ffff:10.0.0.1":     "10.0.0.1/32",
		"0.0.0.0/0":           "0.0.0.0/0",
	} {
		if got, err := ParsePrefix(in); err != nil || got.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0.0/33", "localhost", "10.0.0/8", "fe80::1%eth0/64", "10.0.0.0/8,10.1.0.0/16"} {
		if _, err := ParsePrefix(in); err == nil {
			t.Errorf("ParsePrefix(%q) accepted it", in)
		}
	}
	if _, err := New([]string{"10.0.0.0/8", "nope"}, nil); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("New with a bad range: %v", err)
	}
}

// TestValidateLiteralWithoutLookup: an IP literal is decided without a
// lookup or a connection.
func TestValidateLiteralWithoutLookup(t *testing.T) {
	t.Parallel()
	var lookups atomic.Int32
	r := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		lookups.Add(1)
		return nil, errors.New("no lookup expected")
	}}
	p, err := New([]string{"127.0.0.2/32"}, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []string{"http://10.0.0.1:5000", "http://169.254.169.254", "https://[::1]:443/v2", "http://[::ffff:127.0.0.1]", "http://0.0.0.0:80"} {
		if err := p.Validate(ctx, u); !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), Flag) {
			t.Errorf("Validate(%s) = %v, want refused naming %s", u, err, Flag)
		}
	}
	for _, u := range []string{"http://127.0.0.2:5000", "https://192.0.2.7", "https://[2606:4700::1111]"} {
		if err := p.Validate(ctx, u); err != nil {
			t.Errorf("Validate(%s) = %v, want allowed", u, err)
		}
	}
	if n := lookups.Load(); n != 0 {
		t.Errorf("%d DNS lookups for IP literals", n)
	}
}

func TestValidateNames(t *testing.T) {
	t.Parallel()
	dns := testdns.New()
	dns.Set("internal.test", "10.0.0.5", "fd00::5")
	dns.Set("mixed.test", "10.0.0.5", "192.0.2.5")
	dns.Set("outside.test", "192.0.2.5")
	p, err := New([]string{"127.0.0.2/32"}, dns.Resolver())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = p.Validate(ctx, "https://internal.test/v2")
	if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), Flag) || !strings.Contains(err.Error(), "internal.test") {
		t.Errorf("a name with only internal addresses: %v, want refused naming it and %s", err, Flag)
	}
	if err != nil && (strings.Contains(err.Error(), "10.0.0.5") || strings.Contains(err.Error(), "fd00")) {
		t.Errorf("the refusal %q lists the internal addresses", err)
	}
	if err := p.Validate(ctx, "https://localhost:5000"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("localhost: %v, want refused", err)
	}
	for _, u := range []string{"https://mixed.test", "https://outside.test", "https://unknown.test"} {
		if err := p.Validate(ctx, u); err != nil {
			t.Errorf("Validate(%s) = %v, want accepted (connections are checked again)", u, err)
		}
	}
}

// listener accepts on addr and counts connections.
func listener(t *testing.T, addr string) (net.Listener, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln, &n
}

// samePort listens on 127.0.0.2 and 127.0.0.1 on one port number, so a
// name that moves from one address to the other reaches the same port.
func samePort(t *testing.T) (port string, outside, internal *atomic.Int32) {
	t.Helper()
	for range 50 {
		ln2, n2 := listener(t, "127.0.0.2:0")
		_, port, _ = net.SplitHostPort(ln2.Addr().String())
		ln1, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		ln1.Close()
		_, n1 := listener(t, "127.0.0.1:"+port)
		return port, n2, n1
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return "", nil, nil
}

func TestDialerChecksAtConnect(t *testing.T) {
	t.Parallel()
	port, outside, internal := samePort(t)
	dns := testdns.New()
	p, err := New([]string{"127.0.0.2/32"}, dns.Resolver())
	if err != nil {
		t.Fatal(err)
	}
	d := p.Dialer(5*time.Second, 0, "")
	ctx := context.Background()

	// DNS rebinding: accepted when saved, refused at connect.
	dns.Set("rebind.test", "127.0.0.2")
	if err := p.Validate(ctx, "http://rebind.test:"+port); err != nil {
		t.Fatalf("Validate while the name is outside: %v", err)
	}
	dns.Set("rebind.test", "127.0.0.1")
	if c, err := d.DialContext(ctx, "tcp", "rebind.test:"+port); !errors.Is(err, ErrNotAllowed) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial after rebinding to 127.0.0.1: %v, want refused", err)
	}
	for _, addr := range []string{"127.0.0.1:" + port, "[::ffff:127.0.0.1]:" + port, "localhost:" + port} {
		if c, err := d.DialContext(ctx, "tcp", addr); !errors.Is(err, ErrNotAllowed) {
			if c != nil {
				c.Close()
			}
			t.Errorf("dial %s: %v, want refused", addr, err)
		}
	}
	if n := internal.Load(); n != 0 {
		t.Errorf("the internal listener accepted %d connections", n)
	}

	// Allowed addresses connect, by name and literal.
	dns.Set("rebind.test", "127.0.0.2")
	for _, addr := range []string{"rebind.test:" + port, "127.0.0.2:" + port} {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		c.Close()
	}
	waitCount(t, outside, 2)

	// The trusted host:port is dialled without the check; its other ports
	// and other hosts are not.
	td := p.Dialer(5*time.Second, 0, HostPort(&url.URL{Scheme: "http", Host: "LocalHost:" + port}))
	c, err := td.DialContext(ctx, "tcp", "localhost:"+port)
	if err != nil {
		t.Fatalf("dial the trusted host: %v", err)
	}
	c.Close()
	waitCount(t, internal, 1)
	if _, err := td.DialContext(ctx, "tcp", "127.0.0.1:"+port); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("dial 127.0.0.1 with localhost trusted: %v, want refused (another host string)", err)
	}
}

func waitCount(t *testing.T, n *atomic.Int32, want int32) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections accepted, want %d", n.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDialerProxy(t *testing.T) {
	t.Parallel()
	dns := testdns.New()
	dns.Set("internal.test", "10.0.0.5")
	dns.Set("mixed.test", "192.0.2.5", "10.0.0.5")
	dns.Set("outside.test", "192.0.2.5")
	p, err := New(nil, dns.Resolver())
	if err != nil {
		t.Fatal(err)
	}
	d := p.Dialer(time.Second, 0, "registry.internal.test:443")
	proxyURL, _ := url.Parse("http://10.9.9.9:3128")
	proxy := d.Proxy(func(*http.Request) (*url.URL, error) { return proxyURL, nil })
	for _, tc := range []struct {
		target  string
		allowed bool
	}{
		{"https://outside.test/v2/", true},
		{"https://unknown.test/v2/", true},           // left to the proxy
		{"https://registry.internal.test/v2/", true}, // the trusted upstream
		{"https://internal.test/v2/", false},
		{"https://mixed.test/v2/", false},
		{"http://10.0.0.1/", false},
		{"http://[::1]:5000/", false},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.target, nil)
		u, err := proxy(req)
		if tc.allowed && (err != nil || u != proxyURL) {
			t.Errorf("proxy for %s = %v, %v; want the proxy", tc.target, u, err)
		}
		if !tc.allowed && !errors.Is(err, ErrNotAllowed) {
			t.Errorf("proxy for %s = %v, %v; want refused", tc.target, u, err)
		}
	}
	// The proxy's own address (10.9.9.9:3128, refused by the policy) is
	// the operator's: it is dialled without the check.
	if !d.exempt("10.9.9.9:3128") || d.exempt("10.9.9.9:80") {
		t.Errorf("the proxy's address is not the only exempt one")
	}
	// No proxy: the request goes direct and the dial checks it.
	direct := d.Proxy(func(*http.Request) (*url.URL, error) { return nil, nil })
	req, _ := http.NewRequest(http.MethodGet, "http://10.0.0.1/", nil)
	if u, err := direct(req); u != nil || err != nil {
		t.Errorf("no proxy: %v, %v", u, err)
	}
}
