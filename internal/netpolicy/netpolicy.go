// Package netpolicy owns the upstream address policy: which IP addresses
// dproxy may connect to for an address someone other than the operator
// chose (a group owner's virtual-registry upstream, any upstream's
// redirect, a token realm an upstream names). Loopback, link-local,
// private and similar ranges are refused unless the operator allows them
// (--upstream-allow-cidr).
//
// The check that counts is made at connect time, on the resolved address,
// by a net.Dialer Control hook (see Dialer): a name that resolved to a
// public address when it was saved and to an internal one later (DNS
// rebinding) is still refused. Validate is the early check that gives an
// owner a clear error when an upstream is saved.
//
// It imports no other dproxy package.
package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Flag is the serve flag that allows ranges; refusals name it.
const Flag = "--upstream-allow-cidr"

// ErrNotAllowed is matched (errors.Is) by every refusal of the policy.
var ErrNotAllowed = errors.New("upstream address not allowed")

// refusedRange is a range refused unless allowed, with what it is.
type refusedRange struct {
	prefix netip.Prefix
	what   string
}

// refusedRanges are the ranges refused by default. IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d) are checked as the IPv4 address they carry;
// NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are refused when
// the IPv4 address they embed is.
var refusedRanges = []refusedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network"; 0.0.0.0 reaches the local host`},
	{netip.MustParsePrefix("10.0.0.0/8"), "private network, RFC 1918"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space of carrier-grade NAT, RFC 6598"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local, where cloud metadata services answer"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private network, RFC 1918"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments, RFC 6890"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private network, RFC 1918"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking, RFC 2544"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved, including broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "deprecated IPv4-compatible addresses"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64, RFC 8215"},
	{netip.MustParsePrefix("fc00::/7"), "unique local addresses, RFC 4193"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "deprecated site-local addresses"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// AddrError is a refused address. It matches ErrNotAllowed.
type AddrError struct {
	Addr  netip.Addr   // the address as dialled or written
	Range netip.Prefix // the refused range it is in
	What  string       // what the range is, e.g. "loopback"
}

func (e *AddrError) Error() string {
	return fmt.Sprintf("%s: %s is in %s (%s); an instance admin can allow it with %s", ErrNotAllowed, e.Addr, e.Range, e.What, Flag)
}

// Is makes errors.Is(err, ErrNotAllowed) true.
func (e *AddrError) Is(target error) bool { return target == ErrNotAllowed }

// Policy decides which addresses may be dialled. It is safe for
// concurrent use.
type Policy struct {
	allow    []netip.Prefix
	resolver *net.Resolver
}

// ParsePrefix parses an allowed range: a CIDR ("10.1.0.0/16",
// "fd00::/8") or a single address ("10.1.2.3"). Host bits are cleared;
// an IPv4-mapped IPv6 range is turned into its IPv4 range.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR range such as 10.1.0.0/16 or fd00::/8, nor an IP address", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// New returns the policy that refuses the default ranges except those in
// allow (see ParsePrefix). resolver looks up names, for Validate and for
// Dialer's connections; nil means net.DefaultResolver.
func New(allow []string, resolver *net.Resolver) (*Policy, error) {
	p := &Policy{resolver: resolver}
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	for _, s := range allow {
		pre, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("upstream-allow-cidr: %w", err)
		}
		p.allow = append(p.allow, pre)
	}
	return p, nil
}

// Check returns nil when addr may be dialled, else an *AddrError.
func (p *Policy) Check(addr netip.Addr) error {
	a := addr.WithZone("").Unmap()
	for _, pre := range p.allow {
		if pre.Contains(a) {
			return nil
		}
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(a) {
			return &AddrError{Addr: addr, Range: r.prefix, What: r.what}
		}
	}
	if v4, ok := embeddedIPv4(a); ok {
		if err := p.Check(v4); err != nil {
			e := err.(*AddrError)
			return &AddrError{Addr: addr, Range: e.Range, What: e.What + ", embedded in a NAT64 or 6to4 address"}
		}
	}
	return nil
}

// embeddedIPv4 returns the IPv4 address a NAT64 (64:ff9b::/96) or 6to4
// (2002::/16) address carries.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// validateTimeout bounds Validate's lookup of a name.
const validateTimeout = 5 * time.Second

// Validate is the check when an upstream URL is saved. An IP literal
// host is checked without any lookup or connection; a name is looked up,
// and refused when every address it resolves to is refused. A name that
// does not resolve now is accepted: every connection is checked again.
// The error of a name does not list its addresses: an owner must not learn
// from it where the internal network's names point.
func (p *Policy) Validate(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("upstream url %q has no host", rawURL)
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return p.Check(a)
	}
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	addrs, err := p.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return nil
	}
	for _, a := range addrs {
		if p.Check(a) == nil {
			return nil
		}
	}
	return &NameError{Host: host, Addrs: addrs}
}

// NameError is a host name that resolves only to refused addresses. It
// matches ErrNotAllowed. Its message does not list the addresses; Addrs
// has them for the log.
type NameError struct {
	Host  string
	Addrs []netip.Addr
}

func (e *NameError) Error() string {
	return fmt.Sprintf("%s: %s resolves only to addresses dproxy does not connect to (loopback, link-local, private or similar); an instance admin can allow their range with %s",
		ErrNotAllowed, e.Host, Flag)
}

// Is makes errors.Is(err, ErrNotAllowed) true.
func (e *NameError) Is(target error) bool { return target == ErrNotAllowed }

// control is the net.Dialer Control hook: it runs after the name was
// resolved, just before the connection is made, with the address to be
// connected to.
func (p *Policy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot read the address %q", ErrNotAllowed, address)
	}
	return p.Check(ap.Addr())
}
