package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/netpolicy"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/testdns"
	"github.com/dproxy/dproxy/internal/testregistry"
)

func policy(t *testing.T, allow ...string) *netpolicy.Policy {
	t.Helper()
	p, err := netpolicy.New(allow, testdns.New().Resolver())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPolicyTrustedUpstream: the operator's upstream on loopback is
// dialled as configured; its redirect to another host (its CDN on
// localhost) is checked, refused without a connection and not retried.
func TestPolicyTrustedUpstream(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	img := up.PushRandomImage(t, "library/alpine", "3", 1, 4096)
	layers, _ := img.Layers()
	d := digestOf(t, layers[0])
	ctx := context.Background()

	cl := newClient(t, up, Options{Policy: policy(t), Trusted: true})
	if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("3")); err != nil {
		t.Fatalf("the trusted upstream and its same-host token realm: %v", err)
	}
	up.RedirectBlobs(true)
	_, _, err := cl.GetBlob(ctx, Credentials{}, "library/alpine", d)
	if !errors.Is(err, netpolicy.ErrNotAllowed) || !errors.Is(err, oci.ErrUnavailable) {
		t.Fatalf("GetBlob redirected to localhost = %v, want refused (upstream address not allowed, unavailable)", err)
	}
	if n := up.CDNRequests(); n != 0 {
		t.Errorf("the CDN on a refused address got %d requests", n)
	}
	if n := up.CountBlob("GET", string(d)); n != 1 {
		t.Errorf("%d blob GETs, want 1: a refused address is not retried", n)
	}

	// Allowing the CDN's address lets the redirect through.
	cl = newClient(t, up, Options{Policy: policy(t, "127.0.0.1/32"), Trusted: true})
	rc, _, err := cl.GetBlob(ctx, Credentials{}, "library/alpine", d)
	if err != nil {
		t.Fatalf("GetBlob with 127.0.0.1/32 allowed: %v", err)
	}
	rc.Close()
	if up.CDNRequests() != 1 {
		t.Errorf("CDN requests %d, want 1", up.CDNRequests())
	}
}

// TestPolicyUntrustedUpstream: an upstream someone else chose is checked
// at its own address: nothing is sent to a refused one.
func TestPolicyUntrustedUpstream(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	cl := newClient(t, up, Options{Policy: policy(t)})
	_, err := cl.HeadManifest(context.Background(), Credentials{}, "library/alpine", tag("3"))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, netpolicy.ErrNotAllowed) || e.Public() != "upstream address not allowed" {
		t.Fatalf("HeadManifest of an upstream on 127.0.0.1 = %v, want refused", err)
	}
	if c := up.Counts(); len(c) != 0 {
		t.Errorf("the refused upstream got requests: %v", c)
	}
	cl = newClient(t, up, Options{Policy: policy(t, "127.0.0.1/32")})
	if _, err := cl.HeadManifest(context.Background(), Credentials{}, "library/alpine", tag("3")); err != nil {
		t.Errorf("with 127.0.0.1/32 allowed: %v", err)
	}
}

func TestErrorPublic(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &netpolicy.AddrError{What: "loopback"}}
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Err: refused, sentinel: oci.ErrUnavailable}, "upstream address not allowed"},
		{&Error{Err: errors.New("dial tcp 10.0.0.5:443: i/o timeout"), sentinel: oci.ErrTimeout}, "the upstream did not answer in time"},
		{&Error{Err: errors.New("dial tcp 10.0.0.5:443: connection refused"), sentinel: oci.ErrUnavailable}, "the upstream could not be reached"},
		{&Error{Status: 401, Message: "the upstream rejected the credentials of bot: 10.0.0.5 says no", sentinel: oci.ErrUnavailable}, "the upstream rejected the credentials"},
		{&Error{Status: 429, Message: "slow down", sentinel: oci.ErrTooManyRequests}, "the upstream's rate limit is exhausted"},
		{&Error{Status: 503, Message: "backend 10.0.0.5 down", sentinel: oci.ErrUnavailable}, "the upstream answered 503 Service Unavailable"},
		{&Error{Status: 200, Message: "manifest is larger than the limit of 10 bytes", sentinel: oci.ErrManifestInvalid}, "the upstream sent an invalid manifest: manifest is larger than the limit of 10 bytes"},
		{&Error{Status: 200, Err: fmt.Errorf("%w: Content-Type %q is not a manifest media type", oci.ErrManifestInvalid, "text/html")}, `the upstream sent an invalid manifest: Content-Type "text/html" is not a manifest media type`},
		{&Error{Status: 200, Message: "token service 10.0.0.5 answered invalid JSON", sentinel: oci.ErrUnavailable}, "the upstream sent an answer that does not match the request"},
	} {
		tc.err.Op, tc.err.Host, tc.err.Repo = "GET manifest", "10.0.0.5:443", "team/app"
		got := tc.err.Public()
		if got != tc.want {
			t.Errorf("Public() of %v = %q, want %q", tc.err, got, tc.want)
		}
		if strings.Contains(got, "10.0.0.5") {
			t.Errorf("Public() = %q names the address", got)
		}
	}
}
