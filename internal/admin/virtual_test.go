package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/store"
)

// vrFixture is a top-level group with one member of each role, an
// outsider and an instance admin.
type vrFixture struct {
	*harness
	acme                                              store.Group
	guest, reporter, maintainer, owner, outsider, adm Actor
}

func newVRFixture(t *testing.T, opts Options) *vrFixture {
	h := newHarness(t, opts)
	f := &vrFixture{harness: h, acme: h.group("acme")}
	f.guest, f.reporter, f.maintainer, f.owner = h.user("gina", false), h.user("rita", false), h.user("mara", false), h.user("olga", false)
	f.outsider, f.adm = h.user("otto", false), h.user("root", true)
	h.member(f.acme, f.guest, store.RoleGuest)
	h.member(f.acme, f.reporter, store.RoleReporter)
	h.member(f.acme, f.maintainer, store.RoleMaintainer)
	h.member(f.acme, f.owner, store.RoleOwner)
	return f
}

func (f *vrFixture) registry(name string) Registry {
	f.t.Helper()
	r, err := f.svc.CreateRegistry(f.t.Context(), f.owner, "acme", RegistryInput{Name: name})
	if err != nil {
		f.t.Fatalf("CreateRegistry(%s): %v", name, err)
	}
	return r
}

func (f *vrFixture) upstream(r Registry, name, url string) Upstream {
	f.t.Helper()
	u, err := f.svc.CreateUpstream(f.t.Context(), f.owner, r.ID, UpstreamInput{Name: name, URL: url})
	if err != nil {
		f.t.Fatalf("CreateUpstream(%s): %v", name, err)
	}
	return u
}

// TestVirtualRegistryRoles checks who may read and who may change a
// group's virtual registries: guests and up read, owners and instance
// admins change, outsiders see nothing (as for an unknown registry).
func TestVirtualRegistryRoles(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t, Options{})
	ctx := t.Context()
	r := f.registry("hub")
	u := f.upstream(r, "docker", "https://registry-1.docker.io")

	type op struct {
		name  string
		write bool
		do    func(a Actor) error
	}
	ops := []op{
		{"Registries", false, func(a Actor) error { _, err := f.svc.Registries(ctx, a, "acme"); return err }},
		{"Registry", false, func(a Actor) error { _, err := f.svc.Registry(ctx, a, r.ID); return err }},
		{"Upstreams", false, func(a Actor) error { _, err := f.svc.Upstreams(ctx, a, r.ID); return err }},
		{"GroupUpstreams", false, func(a Actor) error { _, err := f.svc.GroupUpstreams(ctx, a, "acme", ""); return err }},
		{"Upstream", false, func(a Actor) error { _, err := f.svc.Upstream(ctx, a, u.ID); return err }},
		{"CacheEntries", false, func(a Actor) error { _, err := f.svc.CacheEntries(ctx, a, u.ID, CacheEntryQuery{}); return err }},
		{"CreateRegistry", true, func(a Actor) error {
			_, err := f.svc.CreateRegistry(ctx, a, "acme", RegistryInput{Name: "x-" + a.Name()})
			return err
		}},
		{"UpdateRegistry", true, func(a Actor) error {
			d := "by " + a.Name()
			_, err := f.svc.UpdateRegistry(ctx, a, r.ID, RegistryChange{Description: &d})
			return err
		}},
		{"CreateUpstream", true, func(a Actor) error {
			_, err := f.svc.CreateUpstream(ctx, a, r.ID, UpstreamInput{Name: "u-" + a.Name(), URL: "https://quay.io"})
			if errors.Is(err, ErrLimit) {
				return nil // allowed; the registry is full
			}
			return err
		}},
		{"UpdateUpstream", true, func(a Actor) error {
			h := 12
			_, err := f.svc.UpdateUpstream(ctx, a, u.ID, UpstreamChange{CacheValidityHours: &h})
			return err
		}},
		{"MoveUpstream", true, func(a Actor) error { _, err := f.svc.MoveUpstream(ctx, a, u.ID, 0); return err }},
		{"ClearRegistryCache", true, func(a Actor) error { _, err := f.svc.ClearRegistryCache(ctx, a, r.ID, 0); return err }},
		{"ClearUpstreamCache", true, func(a Actor) error { _, err := f.svc.ClearUpstreamCache(ctx, a, u.ID); return err }},
	}
	for _, who := range []struct {
		name         string
		actor        Actor
		read, change bool
	}{
		{"outsider", f.outsider, false, false},
		{"guest", f.guest, true, false},
		{"reporter", f.reporter, true, false},
		{"maintainer", f.maintainer, true, false},
		{"owner", f.owner, true, true},
		{"admin", f.adm, true, true},
	} {
		for _, o := range ops {
			err := o.do(who.actor)
			allowed := who.read && !o.write || who.change
			switch {
			case allowed && err != nil:
				t.Errorf("%s %s: %v, want allowed", who.name, o.name, err)
			case allowed:
			case !who.read:
				wantKind(t, who.name+" "+o.name, err, ErrNotFound, false, "")
			default:
				wantKind(t, who.name+" "+o.name, err, ErrForbidden, false, "needs the owner role")
			}
		}
	}
	// An outsider learns nothing a missing registry would not tell.
	_, errOut := f.svc.Registry(ctx, f.outsider, r.ID)
	wantKind(t, "outsider reads a registry", errOut, ErrNotFound, false, fmt.Sprintf("virtual registry %d does not exist or you cannot read its group", r.ID))
}

func TestCreateRegistryRules(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t, Options{VirtualRegistries: 2})
	ctx := t.Context()
	sub := f.group("acme/ci")
	_, err := f.svc.CreateRegistry(ctx, f.owner, sub.Path, RegistryInput{Name: "hub"})
	wantKind(t, "in a subgroup", err, ErrInvalid, true, "create it in acme instead of acme/ci")
	_, err = f.svc.CreateRegistry(ctx, f.owner, "acme", RegistryInput{Name: " "})
	wantKind(t, "blank name", err, ErrInvalid, true, "use 1 to 255 characters")
	_, err = f.svc.CreateRegistry(ctx, f.owner, "acme", RegistryInput{Name: "hub", Description: "a\x00b"})
	wantKind(t, "control character in the description", err, ErrInvalid, true, "without control characters")
	f.registry("hub")
	_, err = f.svc.CreateRegistry(ctx, f.owner, "acme", RegistryInput{Name: "hub"})
	wantKind(t, "taken name", err, ErrConflict, true, `already has a virtual registry named "hub"`)
	f.registry("quay")
	_, err = f.svc.CreateRegistry(ctx, f.owner, "acme", RegistryInput{Name: "third"})
	wantKind(t, "over the limit", err, ErrLimit, true, "already has 2 virtual registries")
	if !strings.Contains(f.log.String(), `msg="virtual registry created" group=acme`) || !strings.Contains(f.log.String(), "by=olga") {
		t.Errorf("audit log lacks the creation:\n%s", f.log)
	}
}

// fakePolicy refuses every URL on host "10.0.0.1".
type fakePolicy struct{}

func (fakePolicy) Validate(_ context.Context, url string) error {
	if strings.Contains(url, "10.0.0.1") {
		return errors.New("upstream address not allowed: 10.0.0.1 is private")
	}
	return nil
}

func TestUpstreamRules(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t, Options{VirtualUpstreams: 2, AddressPolicy: fakePolicy{}})
	ctx := t.Context()
	r := f.registry("hub")
	bad := 25 * 365 * 24
	for _, c := range []struct {
		name string
		in   UpstreamInput
		want string
	}{
		{"not a URL", UpstreamInput{Name: "a", URL: "ftp://x"}, `url "ftp://x": use http(s)://host[:port][/path]`},
		{"password without username", UpstreamInput{Name: "a", URL: "https://quay.io", Password: "pw-secret"}, "a password needs a username"},
		{"username without password", UpstreamInput{Name: "a", URL: "https://quay.io", Username: "bob"}, `username "bob" needs a password`},
		{"validity", UpstreamInput{Name: "a", URL: "https://quay.io", CacheValidityHours: &bad}, "cacheValidityHours must be between 0"},
		{"address policy", UpstreamInput{Name: "a", URL: "https://10.0.0.1:5000"}, "upstream address not allowed"},
		{"two faults", UpstreamInput{Name: "", URL: "nope"}, "upstream name \"\": use 1 to 255 characters without control characters\nurl \"nope\""},
	} {
		_, err := f.svc.CreateUpstream(ctx, f.owner, r.ID, c.in)
		wantKind(t, c.name, err, ErrInvalid, true, c.want)
		if msg, _ := Message(err); strings.Contains(msg, "pw-secret") {
			t.Errorf("%s: the message shows the password: %q", c.name, msg)
		}
	}
	u := f.upstream(r, "docker", "https://registry-1.docker.io")
	_, err := f.svc.CreateUpstream(ctx, f.owner, r.ID, UpstreamInput{Name: "docker", URL: "https://quay.io"})
	wantKind(t, "taken name", err, ErrConflict, true, `already has an upstream named "docker"`)
	f.upstream(r, "quay", "https://quay.io")
	_, err = f.svc.CreateUpstream(ctx, f.owner, r.ID, UpstreamInput{Name: "ghcr", URL: "https://ghcr.io"})
	wantKind(t, "over the limit", err, ErrLimit, true, "already has 2 upstreams")

	_, err = f.svc.MoveUpstream(ctx, f.owner, u.ID, -1)
	wantKind(t, "negative position", err, ErrInvalid, true, "position must be 0")
	us, err := f.svc.MoveUpstream(ctx, f.owner, u.ID, 5)
	if err != nil || len(us) != 2 || us[1].ID != u.ID || us[1].Position != 1 {
		t.Errorf("MoveUpstream past the end = %+v, %v; want it last", us, err)
	}
}

func TestUpdateUpstreamCredentials(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t, Options{AddressPolicy: fakePolicy{}})
	ctx := t.Context()
	r := f.registry("hub")
	u, err := f.svc.CreateUpstream(ctx, f.owner, r.ID, UpstreamInput{Name: "quay", URL: "https://quay.io", Username: "bob", Password: "pw-secret"})
	if err != nil || !u.PasswordSet || u.Username != "bob" {
		t.Fatalf("CreateUpstream = %+v, %v", u, err)
	}
	s := func(v string) *string { return &v }

	// Another path on the same origin keeps the credentials.
	got, err := f.svc.UpdateUpstream(ctx, f.owner, u.ID, UpstreamChange{URL: s("https://quay.io/v2mirror")})
	if err != nil || got.CredentialsCleared || !got.Upstream.PasswordSet {
		t.Errorf("same origin = %+v, %v; want the credentials kept", got, err)
	}
	// Another host with half the credentials is refused.
	_, err = f.svc.UpdateUpstream(ctx, f.owner, u.ID, UpstreamChange{URL: s("https://ghcr.io"), Username: s("carl")})
	wantKind(t, "new host, username only", err, ErrInvalid, true, "pass both username and password for https://ghcr.io, or neither")
	// A refused address is refused before anything changes.
	_, err = f.svc.UpdateUpstream(ctx, f.owner, u.ID, UpstreamChange{URL: s("https://10.0.0.1")})
	wantKind(t, "refused address", err, ErrInvalid, true, "not allowed")
	// Another host without credentials clears them.
	got, err = f.svc.UpdateUpstream(ctx, f.owner, u.ID, UpstreamChange{URL: s("https://ghcr.io")})
	if err != nil || !got.CredentialsCleared || got.Upstream.PasswordSet || got.Upstream.Username != "" {
		t.Errorf("new host = %+v, %v; want the credentials cleared", got, err)
	}
	// Another host with both sets them.
	got, err = f.svc.UpdateUpstream(ctx, f.owner, u.ID, UpstreamChange{URL: s("https://quay.io"), Username: s("dora"), Password: s("pw2-secret")})
	if err != nil || got.CredentialsCleared || !got.Upstream.PasswordSet || got.Upstream.Username != "dora" {
		t.Errorf("new host with credentials = %+v, %v", got, err)
	}
	if strings.Contains(f.log.String(), "pw-secret") || strings.Contains(f.log.String(), "pw2-secret") {
		t.Errorf("the audit log shows a password:\n%s", f.log)
	}
}

// TestVirtualCacheConsistency checks the order of every deletion of cached
// content: the cache forgets, then the rows go, then the cache hears that
// files were released; a refused deletion releases nothing.
func TestVirtualCacheConsistency(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t, Options{})
	ctx := t.Context()
	r := f.registry("hub")
	a := f.upstream(r, "a", "https://a.example")
	b := f.upstream(r, "b", "https://b.example")
	f.st.entries[a.ID] = []store.VirtualCacheEntry{{Path: "library/alpine/manifests/latest"}, {Path: "blobs/sha256:aa"}}
	f.st.entries[b.ID] = []store.VirtualCacheEntry{{Path: "blobs/sha256:bb"}}
	check := func(what string, want ...string) {
		t.Helper()
		if !slices.Equal(*f.calls, want) {
			t.Errorf("%s: calls %q, want %q", what, *f.calls, want)
		}
		f.resetCalls()
	}
	f.resetCalls()
	err := f.svc.DeleteCacheEntry(ctx, f.owner, a.ID, "blobs/sha256:aa")
	if err != nil {
		t.Fatal(err)
	}
	check("DeleteCacheEntry", fmtCall("forget upstream %d", a.ID), fmtCall("delete entry %d blobs/sha256:aa", a.ID), "released")

	err = f.svc.DeleteCacheEntry(ctx, f.owner, a.ID, "blobs/sha256:aa")
	wantKind(t, "deleting it again", err, ErrNotFound, true, `has no cache entry "blobs/sha256:aa"`)
	check("DeleteCacheEntry of a missing entry", fmtCall("forget upstream %d", a.ID))

	n, err := f.svc.ClearRegistryCache(ctx, f.owner, r.ID, b.ID)
	if err != nil || n != 1 {
		t.Fatalf("ClearRegistryCache(b) = %d, %v", n, err)
	}
	check("ClearRegistryCache of one upstream", fmtCall("forget upstream %d", b.ID), fmtCall("clear upstream %d", b.ID), "released")

	_, err = f.svc.ClearRegistryCache(ctx, f.owner, r.ID, 999)
	wantKind(t, "clearing an upstream of another registry", err, ErrNotFound, true, `has no upstream "999"`)
	check("ClearRegistryCache of a stranger")

	f.st.entries[b.ID] = []store.VirtualCacheEntry{{Path: "blobs/sha256:bb"}}
	if n, err := f.svc.ClearUpstreamCache(ctx, f.owner, b.ID); err != nil || n != 1 {
		t.Fatalf("ClearUpstreamCache(b) = %d, %v", n, err)
	}
	check("ClearUpstreamCache", fmtCall("forget upstream %d", b.ID), fmtCall("clear upstream %d", b.ID), "released")
	_, err = f.svc.ClearUpstreamCache(ctx, f.guest, b.ID)
	wantKind(t, "a guest clears an upstream's cache", err, ErrForbidden, false, "needs the owner role")
	check("ClearUpstreamCache by a guest")

	if del, err := f.svc.DeleteUpstream(ctx, f.owner, a.ID); err != nil || del.ID != a.ID || del.RegistryID != r.ID {
		t.Fatalf("DeleteUpstream = %+v, %v", del, err)
	}
	check("DeleteUpstream", fmtCall("forget upstream %d", a.ID), fmtCall("delete upstream %d", a.ID), "released")

	if err := f.svc.DeleteRegistry(ctx, f.owner, r.ID); err != nil {
		t.Fatal(err)
	}
	check("DeleteRegistry", fmtCall("forget upstream %d", b.ID), fmtCall("delete registry %d", r.ID), "released")
	if _, err := f.svc.Registry(ctx, f.owner, r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the deleted registry: %v, want ErrNotFound", err)
	}
}

func TestAssociations(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t, Options{})
	ctx := t.Context()
	hub, quay := f.registry("hub"), f.registry("quay")
	u := f.upstream(hub, "docker", "https://registry-1.docker.io")
	if a := u.Association(); a.ID != u.ID || a.RegistryID != hub.ID || a.UpstreamID != u.ID || a.Position != 0 {
		t.Errorf("Association = %+v", a)
	}
	_, err := f.svc.AssociateUpstream(ctx, f.owner, hub.ID, u.ID)
	wantKind(t, "associate with its own registry", err, ErrConflict, true, "already associated with virtual registry hub")
	_, err = f.svc.AssociateUpstream(ctx, f.owner, quay.ID, u.ID)
	wantKind(t, "associate with another registry", err, ErrConflict, true, "create a new upstream in quay")
	err = f.svc.DisassociateUpstream(ctx, f.owner, u.ID)
	wantKind(t, "disassociate", err, ErrConflict, true, "delete the upstream instead")
	_, err = f.svc.AssociateUpstream(ctx, f.guest, hub.ID, u.ID)
	wantKind(t, "a guest associates", err, ErrForbidden, false, "needs the owner role")
	if _, err := f.svc.Upstream(ctx, f.owner, u.ID); err != nil {
		t.Errorf("the upstream after the refusals: %v", err)
	}

	other := f.group("globex")
	f.member(other, f.owner, store.RoleOwner)
	r2, err := f.svc.CreateRegistry(ctx, f.owner, "globex", RegistryInput{Name: "hub"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.AssociateUpstream(ctx, f.owner, r2.ID, u.ID)
	wantKind(t, "associate across groups", err, ErrInvalid, true, "belongs to group acme, not to globex")
}

func TestCacheEntriesAndGroupUpstreams(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t, Options{})
	ctx := t.Context()
	hub, quay := f.registry("hub"), f.registry("quay")
	a := f.upstream(hub, "a", "https://a.example")
	b := f.upstream(quay, "b", "https://b.example")
	c := f.upstream(hub, "c", "https://c.example")
	us, err := f.svc.GroupUpstreams(ctx, f.guest, "acme", "")
	if err != nil || len(us) != 3 || us[0].ID != a.ID || us[1].ID != b.ID || us[2].ID != c.ID || us[2].Position != 1 || us[1].RegistryID != quay.ID {
		t.Errorf("GroupUpstreams = %+v, %v", us, err)
	}
	if us, err := f.svc.GroupUpstreams(ctx, f.guest, "acme", "C"); err != nil || len(us) != 1 || us[0].ID != c.ID {
		t.Errorf("GroupUpstreams named like C = %+v, %v; want c alone", us, err)
	}
	f.st.entries[a.ID] = []store.VirtualCacheEntry{
		{Path: "library/alpine/manifests/latest"}, {Path: "library/Alpine/manifests/3.20"}, {Path: "blobs/sha256:aa"},
	}
	page, err := f.svc.CacheEntries(ctx, f.guest, a.ID, CacheEntryQuery{Search: "ALPINE", Limit: 1, Offset: 1, WithTotal: true})
	if err != nil || page.Total != 2 || len(page.Entries) != 1 || page.Entries[0].Path != "library/alpine/manifests/latest" ||
		page.Entries[0].UpstreamID != a.ID || page.Entries[0].GroupID != f.acme.ID {
		t.Errorf("CacheEntries = %+v, %v", page, err)
	}
	_, err = f.svc.CacheEntries(ctx, f.guest, a.ID, CacheEntryQuery{Offset: -1})
	wantKind(t, "negative offset", err, ErrInvalid, true, "must not be negative")
	_, err = f.svc.CacheEntries(ctx, f.guest, 999, CacheEntryQuery{})
	wantKind(t, "unknown upstream", err, ErrNotFound, false, "upstream 999 does not exist")
}

func fmtCall(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func TestUpdateRegistryAndUpstreamNames(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t, Options{})
	ctx := t.Context()
	hub := f.registry("hub")
	f.registry("quay")
	s := func(v string) *string { return &v }
	r, err := f.svc.UpdateRegistry(ctx, f.owner, hub.ID, RegistryChange{Description: s("Docker Hub")})
	if err != nil || r.Name != "hub" || r.Description != "Docker Hub" {
		t.Errorf("change the description = %+v, %v; want the name kept", r, err)
	}
	_, err = f.svc.UpdateRegistry(ctx, f.owner, hub.ID, RegistryChange{Name: s("quay")})
	wantKind(t, "rename onto a taken name", err, ErrConflict, true, `group acme already has a virtual registry named "quay"`)
	_, err = f.svc.UpdateRegistry(ctx, f.owner, hub.ID, RegistryChange{Name: s(""), Description: s("a\x01")})
	wantKind(t, "blank name and a control character", err, ErrInvalid, true, "virtual registry name \"\": use 1 to 255 characters without control characters\nthe description must be")
	a := f.upstream(hub, "a", "https://a.example")
	f.upstream(hub, "b", "https://b.example")
	_, err = f.svc.UpdateUpstream(ctx, f.owner, a.ID, UpstreamChange{Name: s("b")})
	wantKind(t, "rename an upstream onto a taken name", err, ErrConflict, true, `virtual registry hub already has an upstream named "b"`)
	got, err := f.svc.UpdateUpstream(ctx, f.owner, a.ID, UpstreamChange{Name: s("a2")})
	if err != nil || got.Upstream.Name != "a2" || got.Upstream.URL != "https://a.example" || got.Upstream.RegistryID != hub.ID {
		t.Errorf("rename = %+v, %v", got, err)
	}
}
