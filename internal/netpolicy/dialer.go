package netpolicy

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Dialer opens the connections of one upstream client under the policy.
// Every connection is checked at connect time except those to the trusted
// host:port (the operator's own --upstream) and to the HTTP proxy the
// environment names (the operator's too); see Proxy for requests that go
// through a proxy.
type Dialer struct {
	policy  *Policy
	trusted string // canonical host:port dialled without the check; "" none
	checked net.Dialer
	direct  net.Dialer

	mu      sync.Mutex
	proxies map[string]bool // canonical host:port of proxies Proxy returned
}

// Dialer returns a dialer with the connect timeout and keep-alive of
// net.Dialer. trusted is the canonical host:port (see HostPort) of the
// operator's upstream, dialled without the check, or "".
func (p *Policy) Dialer(timeout, keepAlive time.Duration, trusted string) *Dialer {
	return &Dialer{
		policy:  p,
		trusted: strings.ToLower(trusted),
		checked: net.Dialer{Timeout: timeout, KeepAlive: keepAlive, Resolver: p.resolver, Control: p.control},
		direct:  net.Dialer{Timeout: timeout, KeepAlive: keepAlive, Resolver: p.resolver},
		proxies: map[string]bool{},
	}
}

// HostPort is the canonical host:port of u as http.Transport dials it: the
// host in lower case, the scheme's default port when u names none.
func HostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// DialContext is http.Transport's DialContext. addr is host:port before
// resolution; the Control hook sees each resolved address.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.exempt(addr) {
		return d.direct.DialContext(ctx, network, addr)
	}
	return d.checked.DialContext(ctx, network, addr)
}

func (d *Dialer) exempt(addr string) bool {
	addr = strings.ToLower(addr)
	if d.trusted != "" && addr == d.trusted {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proxies[addr]
}

// Proxy wraps http.Transport's Proxy function next (usually
// http.ProxyFromEnvironment). A request that goes through a proxy is
// connected to by the proxy, which resolves the name itself: its host is
// checked here instead, refused when it is a refused IP literal or a name
// with any refused address (a name that does not resolve here is left to
// the proxy). The proxy's own address is the operator's and is dialled
// without the check. Through a proxy DNS rebinding cannot be stopped by
// dproxy; the proxy must refuse internal addresses itself.
func (d *Dialer) Proxy(next func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		proxy, err := next(req)
		if err != nil || proxy == nil {
			return proxy, err
		}
		d.mu.Lock()
		d.proxies[HostPort(proxy)] = true
		d.mu.Unlock()
		if d.trusted != "" && HostPort(req.URL) == d.trusted {
			return proxy, nil
		}
		if err := d.policy.checkEvery(req.Context(), req.URL.Hostname()); err != nil {
			return nil, err
		}
		return proxy, nil
	}
}

// checkEvery refuses host when it is a refused IP literal or a name any
// of whose addresses is refused; a name that does not resolve passes.
func (p *Policy) checkEvery(ctx context.Context, host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return p.Check(a)
	}
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	addrs, err := p.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return err
		}
	}
	return nil
}
