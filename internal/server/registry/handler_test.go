package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/oci"
)

// fakeAuth accepts the Bearer token "good" (as the anonymous principal,
// which needs no store types) and answers PullTarget
// with target or err, recording what it was asked. MirrorRepository maps
// ns "quay.io" to virtual registry 9, refuses any other ns but "docker.io",
// and records the ns values it was asked about.
type fakeAuth struct {
	target auth.Target
	err    error

	authenticated int
	pulls         []oci.Repository
	callers       []string
	namespaces    []string
}

func (f *fakeAuth) MirrorRepository(repo oci.Repository, ns string) (oci.Repository, error) {
	f.namespaces = append(f.namespaces, ns)
	switch ns {
	case "", "docker.io":
		return repo, nil
	case "quay.io":
		return oci.VirtualRepository{RegistryID: 9, Image: repo.Name}.Repository(), nil
	}
	return oci.Repository{}, fmt.Errorf("%w: no --mirror-ns for %s", oci.ErrNameUnknown, ns)
}

func (f *fakeAuth) BearerCaller(_ context.Context, token string) (auth.Caller, error) {
	f.authenticated++
	if token != "good" {
		return auth.Caller{}, fmt.Errorf("%w: bad token", oci.ErrUnauthorized)
	}
	return auth.Caller{Principal: auth.AnonymousPrincipal}, nil
}

func (f *fakeAuth) BasicCaller(context.Context, netip.Addr, string, string) (auth.Caller, error) {
	f.authenticated++
	return auth.Caller{}, fmt.Errorf("%w: no Basic credentials here", oci.ErrUnauthorized)
}

func (f *fakeAuth) PullTarget(_ context.Context, c auth.Caller, repo oci.Repository) (auth.Target, error) {
	f.pulls = append(f.pulls, repo)
	f.callers = append(f.callers, c.Name())
	return f.target, f.err
}

func (f *fakeAuth) SignIn(context.Context, netip.Addr, string, string) (auth.Principal, error) {
	return auth.Principal{}, errors.New("not the token endpoint")
}

func (f *fakeAuth) PrincipalFromRefreshToken(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, errors.New("not the token endpoint")
}

func (f *fakeAuth) GrantedActions(context.Context, auth.Principal, string) []string { return nil }

type noIssuer struct{}

func (noIssuer) Mint(auth.Principal, []auth.Access) (string, time.Time, time.Time, error) {
	return "", time.Time{}, time.Time{}, errors.New("not the token endpoint")
}

func (noIssuer) MintRefresh(auth.Principal) (string, error) {
	return "", errors.New("not the token endpoint")
}

// manifestBody is what the fake caches answer for any manifest.
var manifestBody = []byte(`{"schemaVersion":2}`)

func fakeManifest() cache.Manifest {
	return cache.Manifest{Content: manifestBody, Digest: oci.FromBytes(manifestBody), MediaType: oci.MediaTypeOCIManifest, Result: "hit"}
}

// fakeCache records the targets of a group's dependency proxy.
type fakeCache struct{ targets []cache.Target }

func (c *fakeCache) Manifest(_ context.Context, t cache.Target, _ oci.Reference) (cache.Manifest, error) {
	c.targets = append(c.targets, t)
	return fakeManifest(), nil
}

func (c *fakeCache) Blob(context.Context, cache.Target, oci.Digest) (*cache.Blob, error) {
	return nil, errors.New("no blobs")
}

func (c *fakeCache) StatBlob(context.Context, cache.Target, oci.Digest) (int64, error) {
	return 0, errors.New("no blobs")
}

// fakeVirtual records the registries and images asked of it.
type fakeVirtual struct{ asked []string }

func (v *fakeVirtual) Manifest(_ context.Context, id int64, image string, _ oci.Reference) (cache.Manifest, error) {
	v.asked = append(v.asked, fmt.Sprintf("%d %s", id, image))
	return fakeManifest(), nil
}

func (v *fakeVirtual) Blob(context.Context, int64, string, oci.Digest) (*cache.Blob, error) {
	return nil, errors.New("no blobs")
}

func (v *fakeVirtual) StatBlob(context.Context, int64, string, oci.Digest) (int64, error) {
	return 0, errors.New("no blobs")
}

type fixture struct {
	auth    *fakeAuth
	cache   *fakeCache
	virtual *fakeVirtual
	h       *Handler
}

func newFixture(a *fakeAuth, opts Options) *fixture {
	f := &fixture{auth: a, cache: &fakeCache{}, virtual: &fakeVirtual{}}
	opts.ExternalURL = "https://dproxy.test"
	f.h = New(a, noIssuer{}, f.cache, f.virtual, opts)
	return f
}

func (f *fixture) get(path, token string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.h.V2(w, r)
	return w
}

// TestPullGoesWhereAuthSays: the handler hands auth the parsed repository
// and the caller, and the cache exactly the target auth returned.
func TestPullGoesWhereAuthSays(t *testing.T) {
	t.Parallel()
	const proxy = "acme/dependency_proxy/containers/alpine"
	t.Run("a dependency proxy", func(t *testing.T) {
		t.Parallel()
		target := auth.Target{GroupID: 7, Image: "library/alpine", FreshnessWindow: time.Hour}
		target.Creds.Username, target.Creds.Password = "bot", "s3cret"
		f := newFixture(&fakeAuth{target: target}, Options{})
		w := f.get("/v2/"+proxy+"/manifests/latest", "good")
		if w.Code != http.StatusOK || w.Body.String() != string(manifestBody) {
			t.Fatalf("GET = %d %s", w.Code, w.Body)
		}
		if len(f.auth.pulls) != 1 || f.auth.pulls[0].Name != proxy || f.auth.pulls[0].Kind != oci.ProxyName ||
			f.auth.pulls[0].Proxy.Group != "acme" || f.auth.callers[0] != "anonymous" {
			t.Errorf("PullTarget asked for %+v by %q", f.auth.pulls, f.auth.callers)
		}
		want := cache.Target{GroupID: 7, Image: "library/alpine", Creds: target.Creds, FreshnessWindow: time.Hour}
		if len(f.cache.targets) != 1 || f.cache.targets[0] != want || len(f.virtual.asked) != 0 {
			t.Errorf("cache asked for %+v, virtual for %q; want %+v", f.cache.targets, f.virtual.asked, want)
		}
	})
	t.Run("a virtual registry", func(t *testing.T) {
		t.Parallel()
		f := newFixture(&fakeAuth{target: auth.Target{VirtualRegistryID: 3, Image: "node-exporter"}}, Options{})
		w := f.get("/v2/virtual_registries/container/3/node-exporter/manifests/v1", "good")
		if w.Code != http.StatusOK {
			t.Fatalf("GET = %d %s", w.Code, w.Body)
		}
		if len(f.auth.pulls) != 1 || f.auth.pulls[0].Kind != oci.VirtualName || f.auth.pulls[0].Virtual.RegistryID != 3 {
			t.Errorf("PullTarget asked for %+v", f.auth.pulls)
		}
		if len(f.virtual.asked) != 1 || f.virtual.asked[0] != "3 node-exporter" || len(f.cache.targets) != 0 {
			t.Errorf("virtual asked for %q, cache for %+v", f.virtual.asked, f.cache.targets)
		}
	})
	t.Run("a mirror request for a registry mapped to a virtual registry", func(t *testing.T) {
		t.Parallel()
		f := newFixture(&fakeAuth{target: auth.Target{VirtualRegistryID: 9, Image: "coreos/etcd"}}, Options{})
		w := f.get("/v2/coreos/etcd/manifests/v3?ns=quay.io", "good")
		if w.Code != http.StatusOK {
			t.Fatalf("GET = %d %s", w.Code, w.Body)
		}
		if len(f.auth.pulls) != 1 || f.auth.pulls[0].Kind != oci.VirtualName || f.auth.pulls[0].Virtual.RegistryID != 9 ||
			f.auth.pulls[0].Name != "virtual_registries/container/9/coreos/etcd" || f.auth.pulls[0].Virtual.Image != "coreos/etcd" {
			t.Errorf("PullTarget asked for %+v", f.auth.pulls)
		}
		if len(f.virtual.asked) != 1 || f.virtual.asked[0] != "9 coreos/etcd" || len(f.cache.targets) != 0 {
			t.Errorf("virtual asked for %q, cache for %+v", f.virtual.asked, f.cache.targets)
		}
	})
}

// TestRefusals: what is answered before and after authentication, and
// which challenge goes with a 401.
func TestRefusals(t *testing.T) {
	t.Parallel()
	const proxy = "acme/dependency_proxy/containers/alpine"
	cases := []struct {
		name      string
		pullErr   error
		path      string
		token     string
		status    int
		code      string
		challenge string // a part of WWW-Authenticate; "" = none wanted
		authCalls int
		pulls     int
		// namespaces are the ns values MirrorRepository was asked about,
		// comma-separated.
		namespaces string
	}{
		{name: "no credentials", path: "/v2/" + proxy + "/manifests/latest", status: 401, code: "UNAUTHORIZED",
			challenge: `scope="repository:` + proxy + `:pull"`, authCalls: 0},
		{name: "a bad token", path: "/v2/" + proxy + "/manifests/latest", token: "bad", status: 401, code: "UNAUTHORIZED",
			challenge: `scope="repository:` + proxy + `:pull"`, authCalls: 1},
		{name: "an invalid name, signed in", path: "/v2/Acme/manifests/latest", token: "good", status: 400, code: "NAME_INVALID", authCalls: 1},
		{name: "an invalid name, not signed in", path: "/v2/Acme/manifests/latest", status: 401, code: "UNAUTHORIZED",
			challenge: `realm="https://dproxy.test/jwt/auth"`},
		{name: "a token for another repository", path: "/v2/" + proxy + "/manifests/latest", token: "good",
			pullErr: &auth.InsufficientScopeError{Repository: proxy}, status: 401, code: "UNAUTHORIZED",
			challenge: `scope="repository:` + proxy + `:pull",error="insufficient_scope"`, authCalls: 1, pulls: 1},
		{name: "a group the caller cannot see", path: "/v2/" + proxy + "/manifests/latest", token: "good",
			pullErr: fmt.Errorf("%w: no such group", oci.ErrNameUnknown), status: 404, code: "NAME_UNKNOWN", authCalls: 1, pulls: 1},
		{name: "a push", path: "/v2/" + proxy + "/blobs/uploads/", token: "good", status: 405, code: "UNSUPPORTED", authCalls: 1},
		{name: "a bad tag", path: "/v2/" + proxy + "/manifests/-x", token: "good", status: 404, code: "MANIFEST_UNKNOWN", authCalls: 1},
		{name: "a bad digest", path: "/v2/" + proxy + "/manifests/sha256:x", token: "good", status: 400, code: "DIGEST_INVALID", authCalls: 1},
		{name: "a mirror request for an unmapped registry", path: "/v2/library/alpine/manifests/latest?ns=ghcr.io",
			token: "good", status: 404, code: "NAME_UNKNOWN", namespaces: "ghcr.io"},
		{name: "a mirror request for a mapped registry, not signed in", path: "/v2/coreos/etcd/manifests/v3?ns=quay.io",
			status: 401, code: "UNAUTHORIZED", challenge: `scope="repository:virtual_registries/container/9/coreos/etcd:pull"`, namespaces: "quay.io"},
		{name: "a mirror request for a mapped registry, a token for the plain name", path: "/v2/coreos/etcd/manifests/v3?ns=quay.io", token: "good",
			pullErr: &auth.InsufficientScopeError{Repository: "virtual_registries/container/9/coreos/etcd"}, status: 401, code: "UNAUTHORIZED",
			challenge: `scope="repository:virtual_registries/container/9/coreos/etcd:pull",error="insufficient_scope"`, authCalls: 1, pulls: 1, namespaces: "quay.io"},
		{name: "a query that does not parse is no Docker Hub request", path: "/v2/library/alpine/manifests/latest?ns=quay.io;x=1",
			token: "good", status: 404, code: "NAME_UNKNOWN"},
		{name: "two registries named", path: "/v2/library/alpine/manifests/latest?ns=docker.io&ns=quay.io",
			token: "good", status: 404, code: "NAME_UNKNOWN"},
		{name: "the same registry named twice", path: "/v2/library/alpine/manifests/latest?ns=docker.io&ns=docker.io",
			token: "good", status: 200, authCalls: 1, pulls: 1, namespaces: "docker.io"},
		{name: "a proxy name ignores ns", path: "/v2/" + proxy + "/manifests/latest?ns=ghcr.io;x",
			token: "good", status: 200, authCalls: 1, pulls: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(&fakeAuth{target: auth.Target{GroupID: 1, Image: "library/alpine"}, err: c.pullErr}, Options{})
			w := f.get(c.path, c.token)
			body, _ := io.ReadAll(w.Body)
			if w.Code != c.status || (c.code != "" && !strings.Contains(string(body), `"code":"`+c.code+`"`)) {
				t.Errorf("GET %s = %d %s; want %d %s", c.path, w.Code, body, c.status, c.code)
			}
			got := w.Header().Get("WWW-Authenticate")
			if c.challenge != "" && !strings.Contains(got, c.challenge) {
				t.Errorf("WWW-Authenticate = %q; want it to contain %q", got, c.challenge)
			}
			if c.challenge == "" && got != "" {
				t.Errorf("WWW-Authenticate = %q on a %d", got, w.Code)
			}
			if f.auth.authenticated != c.authCalls || len(f.auth.pulls) != c.pulls {
				t.Errorf("authenticated %d times and asked %d pull targets; want %d and %d", f.auth.authenticated, len(f.auth.pulls), c.authCalls, c.pulls)
			}
			if got := strings.Join(f.auth.namespaces, ","); got != c.namespaces {
				t.Errorf("MirrorRepository asked about ns %q; want %q", got, c.namespaces)
			}
		})
	}
}
