package app_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
)

// The address policy's attack tests. 127.0.0.1 stands for the internal
// network (refused), 127.0.0.2 for a registry on the internet (allowed
// with --upstream-allow-cidr 127.0.0.2/32); both are loopback, so nothing
// leaves the machine.

// addrServer is an HTTP server on one loopback address that counts the
// connections it accepted: 0 means nothing was sent to it.
type addrServer struct {
	*httptest.Server
	conns atomic.Int32
}

// newAddrServer starts h on ip:port (port 0: any free port).
func newAddrServer(t *testing.T, ip string, port int, h http.Handler) *addrServer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	s := &addrServer{Server: httptest.NewUnstartedServer(h)}
	s.Listener.Close()
	s.Listener = ln
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *addrServer) port() int { return s.Listener.Addr().(*net.TCPAddr).Port }

// internalManifest is what the internal server hands out as a manifest:
// were it reached, a pull through dproxy would succeed with these bytes.
var internalManifest = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
	`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)

// internalHandler answers like a registry and a token service that must
// never be reached: any manifest, any token.
func internalHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/token") {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"token":"internal-token"}`))
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", digestOf(internalManifest))
		w.Header().Set("Content-Length", strconv.Itoa(len(internalManifest)))
		if r.Method != http.MethodHead {
			w.Write(internalManifest)
		}
	})
}

// newInternal starts the internal server on 127.0.0.1 (port 0: any).
func newInternal(t *testing.T, port int) *addrServer {
	return newAddrServer(t, "127.0.0.1", port, internalHandler())
}

// allowCIDR is the configure hook of an env whose operator allows cidrs.
func allowCIDR(cidrs ...string) func(*config.Config) {
	return func(c *config.Config) { c.UpstreamAllowCIDR = cidrs }
}

// policyEnv is a server whose group acme has a virtual registry "all"
// with no upstreams, an owner olive (api token) and a puller alice.
type policyEnv struct {
	*env
	reg   int64
	owner string // olive's api token
	alice string // read_virtual_registry + read_registry
}

func newPolicyEnv(t *testing.T, o envOptions) *policyEnv {
	t.Helper()
	e := newEnv(t, o)
	e.group("acme")
	r, err := e.app.Store.CreateVirtualRegistry(context.Background(), store.VirtualRegistry{GroupID: e.groupID("acme"), Name: "all"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	return &policyEnv{env: e, reg: r.ID,
		owner: e.user("olive", "acme", store.RoleOwner, auth.ScopeAPI),
		alice: e.user("alice", "acme", store.RoleGuest, auth.ScopeReadVirtualRegistry, auth.ScopeReadRegistry)}
}

// addUpstream stores an upstream directly, as if it had been saved before
// the policy (or resolved elsewhere then): only the connect-time check
// stands between it and the address.
func (p *policyEnv) addUpstream(name, url string) {
	p.t.Helper()
	if _, err := p.app.Store.AddVirtualUpstream(context.Background(),
		store.VirtualUpstream{RegistryID: p.reg, Name: name, URL: url, CacheValidityHours: 24}, 5); err != nil {
		p.t.Fatal(err)
	}
}

// pull GETs image:tag's manifest through the virtual registry as alice.
func (p *policyEnv) pull(image, tag string) (*http.Response, []byte) {
	repo := fmt.Sprintf("virtual_registries/container/%d/%s", p.reg, image)
	return p.do(http.MethodGet, "/v2/"+repo+"/manifests/"+tag, p.jwt("alice", p.alice, repo))
}

// wantRefusedPull checks a pull answer is 502 UNAVAILABLE "upstream address
// not allowed" in an OCI body, naming the upstream but no address.
func wantRefusedPull(t *testing.T, res *http.Response, body []byte, upstream string, hidden ...string) {
	t.Helper()
	code, msg := ociError(t, body)
	if res.StatusCode != http.StatusBadGateway || code != "UNAVAILABLE" || !strings.Contains(msg, "upstream address not allowed") {
		t.Errorf("pull answered %d %s %q, want 502 UNAVAILABLE upstream address not allowed", res.StatusCode, code, msg)
	}
	if !strings.Contains(msg, "upstream "+upstream) {
		t.Errorf("message %q does not name upstream %s", msg, upstream)
	}
	for _, h := range hidden {
		if strings.Contains(msg, h) {
			t.Errorf("message %q echoes %q", msg, h)
		}
	}
}

func TestAddressPolicyRefusesInternalUpstreams(t *testing.T) {
	t.Parallel()
	internal := newInternal(t, 0)
	outside := newAddrServer(t, "127.0.0.2", 0, internalHandler())
	p := newPolicyEnv(t, envOptions{configure: allowCIDR("127.0.0.2/32")})
	regID := "gid://dproxy/VirtualRegistries::Container::Registry/" + strconv.FormatInt(p.reg, 10)
	port := strconv.Itoa(internal.port())

	for i, url := range []string{
		"http://127.0.0.1:" + port,
		"http://127.9.9.9:" + port,
		"http://[::1]:" + port,
		"http://[::ffff:127.0.0.1]:" + port,
		"http://[::ffff:7f00:1]:" + port,
		"http://localhost:" + port,
		"http://0.0.0.0:" + port,
		"http://0.1.2.3:" + port,
		"http://169.254.169.254",
		"http://[fe80::1]:5000",
		"http://10.0.0.1:5000",
		"http://172.16.5.4",
		"http://192.168.1.1",
		"http://100.64.0.1",
		"http://[fd00::1]",
		"http://224.0.0.1",
		"http://[ff02::1]",
		"http://[::]:" + port,
	} {
		pl := p.vrMutate(p.owner, "containerVirtualRegistryUpstreamCreate", map[string]any{"registryId": regID, "name": "internal" + strconv.Itoa(i), "url": url})
		if msg := strings.Join(pl.Errors, "; "); !strings.Contains(msg, "--upstream-allow-cidr") || pl.ContainerVirtualRegistry != nil {
			t.Errorf("owner adds upstream %s: errors %q, want a refusal naming --upstream-allow-cidr", url, pl.Errors)
		}
	}

	// An allowed upstream cannot be moved onto an internal address either.
	r := mustVR(t, p.vrMutate(p.owner, "containerVirtualRegistryUpstreamCreate", map[string]any{"registryId": regID, "name": "outside", "url": outside.URL}))
	pl := p.vrMutate(p.owner, "containerVirtualRegistryUpstreamUpdate", map[string]any{"id": r.Upstreams[0].ID, "url": "http://127.0.0.1:" + port})
	if msg := strings.Join(pl.Errors, "; "); !strings.Contains(msg, "--upstream-allow-cidr") {
		t.Errorf("owner moves an upstream to 127.0.0.1: errors %q, want a refusal naming --upstream-allow-cidr", pl.Errors)
	}
	if n := internal.conns.Load(); n != 0 {
		t.Errorf("the internal server accepted %d connections while upstreams were saved", n)
	}
	if n := outside.conns.Load(); n != 0 {
		t.Errorf("saving an upstream connected to it %d times; validation must not dial", n)
	}
}

func TestAddressPolicyRefusesAtConnect(t *testing.T) {
	t.Parallel()
	internal := newInternal(t, 0)
	p := newPolicyEnv(t, envOptions{configure: allowCIDR("127.0.0.2/32")})
	p.addUpstream("sneaky", internal.URL)

	res, body := p.pull("team/app", "v1")
	wantRefusedPull(t, res, body, "sneaky", "127.0.0.1", internal.URL)
	if n := internal.conns.Load(); n != 0 {
		t.Errorf("the internal server accepted %d connections, want none", n)
	}
}

func TestAddressPolicyRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	internal := newInternal(t, 0)
	outside := newAddrServer(t, "127.0.0.2", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal.URL+r.URL.Path, http.StatusFound)
	}))
	p := newPolicyEnv(t, envOptions{configure: allowCIDR("127.0.0.2/32")})
	p.addUpstream("redirector", outside.URL)

	res, body := p.pull("team/app", "v1")
	wantRefusedPull(t, res, body, "redirector", "127.0.0.1")
	if n := internal.conns.Load(); n != 0 {
		t.Errorf("the redirect was followed: the internal server accepted %d connections", n)
	}
	if outside.conns.Load() == 0 {
		t.Errorf("the allowed upstream was never asked")
	}
}

func TestAddressPolicyRealmNotContacted(t *testing.T) {
	t.Parallel()
	internal := newInternal(t, 0)
	outside := newAddrServer(t, "127.0.0.2", 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+internal.URL+`/token",service="x"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		internalHandler().ServeHTTP(w, r)
	}))
	p := newPolicyEnv(t, envOptions{configure: allowCIDR("127.0.0.2/32")})
	p.addUpstream("challenger", outside.URL)

	res, body := p.pull("team/app", "v1")
	wantRefusedPull(t, res, body, "challenger", "127.0.0.1")
	if n := internal.conns.Load(); n != 0 {
		t.Errorf("the token realm was contacted: the internal server accepted %d connections", n)
	}
}

// TestAddressPolicyDialErrorsNotEchoed: a registry client learns the
// upstream's name and a generic reason; the address and the network error
// go to the log only.
func TestAddressPolicyDialErrorsNotEchoed(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there: connection refused
	p := newPolicyEnv(t, envOptions{configure: allowCIDR("127.0.0.2/32")})
	p.addUpstream("gone", "http://"+closed)

	res, body := p.pull("team/app", "v1")
	code, msg := ociError(t, body)
	if res.StatusCode != http.StatusBadGateway || code != "UNAVAILABLE" || !strings.Contains(msg, "upstream gone") {
		t.Errorf("pull answered %d %s %q, want 502 UNAVAILABLE naming upstream gone", res.StatusCode, code, msg)
	}
	for _, leak := range []string{"127.0.0.2", closed, "connection refused", "dial"} {
		if strings.Contains(msg, leak) {
			t.Errorf("message %q echoes %q", msg, leak)
		}
	}
	if !strings.Contains(p.logs.String(), "connection refused") || !strings.Contains(p.logs.String(), closed) {
		t.Errorf("the log does not have the dial error with the address")
	}
}

// TestAddressPolicyInstanceUpstream: the operator's --upstream on loopback
// is trusted without the flag; a redirect it sends to another host is not.
func TestAddressPolicyInstanceUpstream(t *testing.T) {
	t.Parallel()
	for _, allowed := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow=%v", allowed), func(t *testing.T) {
			t.Parallel()
			o := envOptions{}
			if allowed {
				o.configure = allowCIDR("127.0.0.1/32")
			}
			e := newEnv(t, o)
			f := e.aliceBlob("redirected", 4096)
			res, body := e.do(http.MethodGet, strings.Replace(f.path, "/blobs/"+f.digest.String(), "/manifests/v1", 1), f.jwt)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("manifest from the instance upstream on loopback: %d %s", res.StatusCode, body)
			}
			e.up.RedirectBlobs(true) // to its CDN on localhost: another host
			res, body = e.do(http.MethodGet, f.path, f.jwt)
			if allowed {
				if res.StatusCode != http.StatusOK || e.up.CDNRequests() == 0 {
					t.Errorf("allowed CDN redirect: %d, %d CDN requests", res.StatusCode, e.up.CDNRequests())
				}
				return
			}
			code, msg := ociError(t, body)
			if res.StatusCode != http.StatusBadGateway || code != "UNAVAILABLE" || !strings.Contains(msg, "upstream address not allowed") {
				t.Errorf("redirect to a refused address: %d %s %q, want 502 UNAVAILABLE upstream address not allowed", res.StatusCode, code, msg)
			}
			if n := e.up.CDNRequests(); n != 0 {
				t.Errorf("the CDN on a refused address got %d requests", n)
			}
		})
	}
}

// TestAddressPolicyDNSRebinding: a name that resolved to an allowed
// address when the upstream was saved and resolves to an internal one when
// dproxy connects is refused at connect time.
func TestAddressPolicyDNSRebinding(t *testing.T) {
	t.Parallel()
	// The internal server listens on the port the outside one has, so the
	// rebound name reaches a live service if the check fails.
	var outside, internal *addrServer
	for range 50 {
		outside = newAddrServer(t, "127.0.0.2", 0, internalHandler())
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(outside.port()))
		if err != nil {
			continue
		}
		ln.Close()
		internal = newInternal(t, outside.port())
		break
	}
	if internal == nil {
		t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	}
	p := newPolicyEnv(t, envOptions{configure: allowCIDR("127.0.0.2/32")})
	url := "http://registry.rebind.test:" + strconv.Itoa(outside.port())

	p.dns.Set("registry.rebind.test", "127.0.0.2")
	mustVR(t, p.vrMutate(p.owner, "containerVirtualRegistryUpstreamCreate", map[string]any{
		"registryId": "gid://dproxy/VirtualRegistries::Container::Registry/" + strconv.FormatInt(p.reg, 10), "name": "rebinder", "url": url}))
	if p.dns.Queries("registry.rebind.test") == 0 {
		t.Errorf("saving the upstream did not look its name up")
	}
	p.dns.Set("registry.rebind.test", "127.0.0.1")

	res, body := p.pull("team/app", "v1")
	wantRefusedPull(t, res, body, "rebinder", "127.0.0.1", url)
	if n := internal.conns.Load(); n != 0 {
		t.Errorf("the rebound name reached the internal server: %d connections", n)
	}
	if n := outside.conns.Load(); n != 0 {
		t.Errorf("the outside server got %d connections; the name pointed elsewhere", n)
	}
	if !strings.Contains(p.logs.String(), "127.0.0.1") {
		t.Errorf("the log does not name the refused address")
	}
}
