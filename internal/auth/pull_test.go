package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// pullWorld is the world with dependency proxy settings:
//
//	a           enabled, credentials a-bot, freshness window 2h
//	a/sub       disabled
//	a/sub/deep  anonymous pulls allowed and using its credentials deep-bot
//	b           anonymous pulls allowed, no credentials (the instance default is def)
//
// and virtual registry vr in group a.
type pullWorld struct {
	*world
	vr store.VirtualRegistry
}

func newPullWorld(t *testing.T) *pullWorld {
	t.Helper()
	w := &pullWorld{world: newWorld(t)}
	ctx := context.Background()
	for path, ps := range map[string]store.ProxySetting{
		"a":          {Enabled: true, Identity: "a-bot", Secret: "a-secret", FreshnessWindow: 2 * time.Hour},
		"a/sub":      {Enabled: false},
		"a/sub/deep": {Enabled: true, Identity: "deep-bot", Secret: "deep-secret", AllowAnonymousPull: true, AnonymousPullsUseCredentials: true},
		"b":          {Enabled: true, AllowAnonymousPull: true},
	} {
		ps.GroupID = w.groups[path].ID
		if err := w.st.UpdateProxySetting(ctx, ps); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.st.SetDefaultHubCredentials(ctx, store.HubCredentials{Identity: "def", Secret: "def-secret"}); err != nil {
		t.Fatal(err)
	}
	vr, err := w.st.CreateVirtualRegistry(ctx, store.VirtualRegistry{GroupID: w.groups["a"].ID, Name: "vr"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	w.vr = vr
	return w
}

// bearer is the caller of a registry token minted for who (a user, a
// token name, or "anonymous") granting pull on names.
func (w *pullWorld) bearer(t *testing.T, svc *Service, who string, names ...string) Caller {
	t.Helper()
	p := AnonymousPrincipal
	if who != "anonymous" {
		p = w.principal(t, who)
	}
	var access []Access
	for _, n := range names {
		access = append(access, Access{Type: "repository", Name: n, Actions: []string{"pull"}})
	}
	tok, _, _, err := w.iss.Mint(p, access)
	if err != nil {
		t.Fatal(err)
	}
	c, err := svc.BearerCaller(context.Background(), tok)
	if err != nil {
		t.Fatalf("BearerCaller(%s): %v", who, err)
	}
	return c
}

func proxyName(group, image string) string { return group + "/dependency_proxy/containers/" + image }

func TestPullTarget(t *testing.T) {
	t.Parallel()
	w := newPullWorld(t)
	ctx := context.Background()
	plain := w.service(t0)
	mirror := NewService(w.st, w.iss, ServiceOptions{Now: fixedClock(t0), MirrorGroup: "a"})
	virtual := fmt.Sprintf("virtual_registries/container/%d/prometheus/node-exporter", w.vr.ID)
	aBot := upstream.Credentials{Username: "a-bot", Password: "a-secret"}

	cases := []struct {
		name    string
		svc     *Service
		who     string
		granted string // the repository the token grants; "" = the one pulled
		repo    string
		want    Target
		wantErr error
	}{
		{name: "the group's credentials and freshness window", svc: plain, who: "alice", repo: proxyName("a", "alpine"),
			want: Target{GroupID: w.groups["a"].ID, Group: "a", Image: "library/alpine", Creds: aBot, FreshnessWindow: 2 * time.Hour}},
		{name: "a namespaced image is asked for as is", svc: plain, who: "group-a-guest", repo: proxyName("a", "bitnami/redis"),
			want: Target{GroupID: w.groups["a"].ID, Group: "a", Image: "bitnami/redis", Creds: aBot, FreshnessWindow: 2 * time.Hour}},
		{name: "the instance default without group credentials", svc: plain, who: "root", repo: proxyName("b", "alpine"),
			want: Target{GroupID: w.groups["b"].ID, Group: "b", Image: "library/alpine", Creds: upstream.InstanceDefault("def", "def-secret")}},
		{name: "anonymous goes upstream anonymously", svc: plain, who: "anonymous", repo: proxyName("b", "alpine"),
			want: Target{GroupID: w.groups["b"].ID, Group: "b", Image: "library/alpine"}},
		{name: "anonymous uses credentials where an admin allowed it", svc: plain, who: "anonymous", repo: proxyName("a/sub/deep", "alpine"),
			want: Target{GroupID: w.groups["a/sub/deep"].ID, Group: "a/sub/deep", Image: "library/alpine", Creds: upstream.Credentials{Username: "deep-bot", Password: "deep-secret"}}},
		{name: "a disabled dependency proxy", svc: plain, who: "alice", repo: proxyName("a/sub", "alpine"), wantErr: oci.ErrDenied},
		{name: "a group the caller cannot see", svc: plain, who: "bob", repo: proxyName("a", "alpine"), wantErr: oci.ErrNameUnknown},
		{name: "anonymous on a group without anonymous pulls", svc: plain, who: "anonymous", repo: proxyName("a", "alpine"), wantErr: oci.ErrUnauthorized},
		{name: "a plain name through the mirror group", svc: mirror, who: "alice", repo: "alpine",
			want: Target{GroupID: w.groups["a"].ID, Group: "a", Image: "library/alpine", Creds: aBot, FreshnessWindow: 2 * time.Hour}},
		{name: "a plain name without mirror mode", svc: plain, who: "root", repo: "library/alpine", wantErr: oci.ErrNameUnknown},
		{name: "a virtual registry", svc: plain, who: "alice-vread+read", repo: virtual,
			want: Target{VirtualRegistryID: w.vr.ID, Image: "prometheus/node-exporter"}},
		{name: "a virtual registry without its scopes", svc: plain, who: "alice-read", repo: virtual, wantErr: oci.ErrDenied},
		{name: "a token for another repository", svc: plain, who: "alice", granted: proxyName("a", "busybox"), repo: proxyName("a", "alpine"), wantErr: errInsufficientScope},
		{name: "a token for another repository of a group the caller cannot see", svc: plain, who: "bob",
			granted: proxyName("b", "alpine"), repo: proxyName("a", "alpine"), wantErr: oci.ErrNameUnknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			granted := c.granted
			if granted == "" {
				granted = c.repo
			}
			repo, err := oci.ParseRepository(c.repo)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.svc.PullTarget(ctx, w.bearer(t, c.svc, c.who, granted), repo)
			if err == nil && !got.BlobRefsKnown {
				t.Errorf("PullTarget = %+v: the blob-reference generation read with the auth generation is not passed on", got)
			}
			got.BlobRefs, got.BlobRefsKnown = 0, false // a number of the store's, checked above
			switch {
			case c.wantErr == errInsufficientScope:
				if !IsInsufficientScope(err) || !errors.Is(err, oci.ErrUnauthorized) {
					t.Fatalf("PullTarget = %+v, %v; want an insufficient scope error wrapping ErrUnauthorized", got, err)
				}
			case c.wantErr != nil:
				if !errors.Is(err, c.wantErr) || IsInsufficientScope(err) {
					t.Fatalf("PullTarget = %+v, %v; want an error wrapping %v", got, err, c.wantErr)
				}
			case err != nil || got != c.want:
				t.Fatalf("PullTarget = %+v, %v; want %+v", got, err, c.want)
			}
			if got.Virtual() != (c.want.VirtualRegistryID != 0) {
				t.Errorf("Virtual() = %v for %+v", got.Virtual(), got)
			}
		})
	}

	t.Run("Basic credentials carry no access list", func(t *testing.T) {
		t.Parallel()
		c, err := plain.BasicCaller(ctx, netip.MustParseAddr("127.0.0.1"), "alice", w.secrets["alice-read"])
		if err != nil {
			t.Fatal(err)
		}
		repo, _ := oci.ParseRepository(proxyName("a", "alpine"))
		if got, err := plain.PullTarget(ctx, c, repo); err != nil || got.GroupID != w.groups["a"].ID {
			t.Fatalf("PullTarget = %+v, %v", got, err)
		}
	})
}

// TestMirrorRepository: a mirror request's ?ns= picks Docker Hub (the
// mirror group) or the virtual registry --mirror-ns maps it to, which is
// then pulled by a virtual registry's rules and named in tokens by its
// own name; any other ns is unknown, and names of other forms ignore it.
func TestMirrorRepository(t *testing.T) {
	t.Parallel()
	w := newPullWorld(t)
	ctx := context.Background()
	svc := NewService(w.st, w.iss, ServiceOptions{Now: fixedClock(t0), MirrorGroup: "a",
		MirrorNamespaces: map[string]int64{"quay.io": w.vr.ID, "registry.example.com:5000": 999}})
	plain, _ := oci.ParseRepository("coreos/etcd")
	virtualName := fmt.Sprintf("virtual_registries/container/%d/coreos/etcd", w.vr.ID)

	for _, ns := range []string{"", "docker.io", "registry-1.docker.io", "index.docker.io", "Docker.IO"} {
		if got, err := svc.MirrorRepository(plain, ns); err != nil || got != plain {
			t.Errorf("ns %q: %+v, %v; want the plain name for the mirror group", ns, got, err)
		}
	}
	for _, ns := range []string{"quay.io", "QUAY.io"} {
		got, err := svc.MirrorRepository(plain, ns)
		if err != nil || got.Kind != oci.VirtualName || got.Name != virtualName || got.Virtual.RegistryID != w.vr.ID || got.Virtual.Image != "coreos/etcd" {
			t.Errorf("ns %q: %+v, %v; want %s", ns, got, err, virtualName)
		}
	}
	for _, ns := range []string{"ghcr.io", "quay.io.evil.example", "quay.io:443", "quay.io/x", "evil.example/quay.io", " quay.io"} {
		_, err := svc.MirrorRepository(plain, ns)
		if !errors.Is(err, oci.ErrNameUnknown) || !strings.Contains(err.Error(), "--mirror-ns") {
			t.Errorf("ns %q: %v; want NAME_UNKNOWN naming --mirror-ns", ns, err)
		}
	}
	proxy, _ := oci.ParseRepository(proxyName("a", "alpine"))
	if got, err := svc.MirrorRepository(proxy, "ghcr.io"); err != nil || got != proxy {
		t.Errorf("a dependency proxy name with ns: %+v, %v; want it unchanged", got, err)
	}

	// The mapped repository is pulled by a virtual registry's rules.
	quay, _ := svc.MirrorRepository(plain, "quay.io")
	if got, err := svc.PullTarget(ctx, w.bearer(t, svc, "alice-vread+read", virtualName), quay); err != nil ||
		got.VirtualRegistryID != w.vr.ID || got.Image != "coreos/etcd" || got.GroupID != 0 {
		t.Errorf("PullTarget = %+v, %v; want the virtual registry", got, err)
	}
	if _, err := svc.PullTarget(ctx, w.bearer(t, svc, "alice-read", virtualName), quay); !errors.Is(err, oci.ErrDenied) {
		t.Errorf("without read_virtual_registry: %v, want DENIED", err)
	}
	if _, err := svc.PullTarget(ctx, w.bearer(t, svc, "anonymous", virtualName), quay); !errors.Is(err, oci.ErrUnauthorized) {
		t.Errorf("anonymous: %v, want UNAUTHORIZED", err)
	}
	// A token for the plain name is not one for the virtual registry's.
	if _, err := svc.PullTarget(ctx, w.bearer(t, svc, "alice-vread+read", "coreos/etcd"), quay); !IsInsufficientScope(err) {
		t.Errorf("a token granting the plain name: %v, want insufficient scope", err)
	}
	// A mapped id that does not exist is unknown.
	missing, _ := svc.MirrorRepository(plain, "registry.example.com:5000")
	if _, err := svc.PullTarget(ctx, w.bearer(t, svc, "root", missing.Name), missing); !errors.Is(err, oci.ErrNameUnknown) {
		t.Errorf("a mapped id that does not exist: %v, want NAME_UNKNOWN", err)
	}
}

// errInsufficientScope marks the cases expecting IsInsufficientScope.
var errInsufficientScope = errors.New("insufficient scope")

// countingAccounts counts the reads of the store behind a Service, and can
// fail reading the auth generation.
type countingAccounts struct {
	Accounts
	mu      sync.Mutex
	reads   int // every read but Generations
	gens    int
	genFail bool
}

func (c *countingAccounts) count() { c.mu.Lock(); c.reads++; c.mu.Unlock() }

func (c *countingAccounts) snapshot() (reads, gens int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads, c.gens
}

func (c *countingAccounts) Generations(ctx context.Context) (store.Generations, error) {
	c.mu.Lock()
	c.gens++
	fail := c.genFail
	c.mu.Unlock()
	if fail {
		return store.Generations{}, errors.New("database is gone")
	}
	return c.Accounts.Generations(ctx)
}

func (c *countingAccounts) UserByID(ctx context.Context, id int64) (store.User, error) {
	c.count()
	return c.Accounts.UserByID(ctx, id)
}

func (c *countingAccounts) TokenByID(ctx context.Context, id int64) (store.Token, error) {
	c.count()
	return c.Accounts.TokenByID(ctx, id)
}

func (c *countingAccounts) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	c.count()
	return c.Accounts.TokenByHash(ctx, hash)
}

func (c *countingAccounts) GroupByPath(ctx context.Context, path string) (store.Group, error) {
	c.count()
	return c.Accounts.GroupByPath(ctx, path)
}

func (c *countingAccounts) EffectiveRole(ctx context.Context, userID, groupID int64) (store.Role, error) {
	c.count()
	return c.Accounts.EffectiveRole(ctx, userID, groupID)
}

func (c *countingAccounts) ProxySetting(ctx context.Context, groupID int64) (store.ProxySetting, error) {
	c.count()
	return c.Accounts.ProxySetting(ctx, groupID)
}

func (c *countingAccounts) DefaultHubCredentials(ctx context.Context) (store.HubCredentials, error) {
	c.count()
	return c.Accounts.DefaultHubCredentials(ctx)
}

// TestPullTargetsAreRemembered: a warm pull reads only the auth
// generation; a change to the settings, or another caller, takes the full
// path; without a generation nothing is remembered.
func TestPullTargetsAreRemembered(t *testing.T) {
	t.Parallel()
	w := newPullWorld(t)
	ctx := context.Background()
	acc := &countingAccounts{Accounts: w.st}
	svc := NewService(acc, w.iss, ServiceOptions{Now: fixedClock(t0)})
	name := proxyName("b", "alpine")
	repo, _ := oci.ParseRepository(name)
	pull := func(who string) (Target, error) {
		t.Helper()
		return svc.PullTarget(ctx, w.bearer(t, svc, who, name), repo)
	}

	first, err := pull("root")
	if err != nil {
		t.Fatal(err)
	}
	reads, gens := acc.snapshot()
	if reads == 0 || gens != 1 {
		t.Fatalf("cold pull: %d reads, %d generation reads; want some reads and one generation read", reads, gens)
	}
	again, err := pull("root")
	if err != nil || again != first {
		t.Fatalf("warm pull = %+v, %v; want %+v", again, err, first)
	}
	if r, g := acc.snapshot(); r != reads || g != gens+1 {
		t.Fatalf("warm pull made %d reads and %d generation reads; want 0 and 1", r-reads, g-gens)
	}

	// Another caller's pull is decided for that caller.
	if _, err := pull("alice"); !errors.Is(err, oci.ErrNameUnknown) {
		t.Fatalf("alice's pull from b: %v; want NAME_UNKNOWN, not root's remembered target", err)
	}

	// A settings change moves the generation: the next pull reads the new
	// credentials.
	if err := w.st.UpdateProxySetting(ctx, store.ProxySetting{GroupID: w.groups["b"].ID, Enabled: true, Identity: "b-bot", Secret: "b-secret"}); err != nil {
		t.Fatal(err)
	}
	changed, err := pull("root")
	if want := (upstream.Credentials{Username: "b-bot", Password: "b-secret"}); err != nil || changed.Creds != want {
		t.Fatalf("pull after a settings change = %+v, %v; want credentials %+v", changed, err, want)
	}

	// An unreadable generation: every pull takes the full path (a fresh
	// service, so no earlier generation protects it).
	failing := &countingAccounts{Accounts: w.st, genFail: true}
	svc = NewService(failing, w.iss, ServiceOptions{Now: fixedClock(t0)})
	for i := range 2 {
		before, _ := failing.snapshot()
		if _, err := pull("root"); err != nil {
			t.Fatalf("pull %d without a generation: %v", i, err)
		}
		if after, _ := failing.snapshot(); after == before {
			t.Fatalf("pull %d without a generation made no reads: a decision was reused", i)
		}
	}
}
