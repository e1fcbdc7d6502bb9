package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

func TestAuthorizeGroup(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	svc := w.service(t0)
	ctx := context.Background()
	for _, c := range []struct {
		who, path string
		need      store.Role
		wantErr   error // nil: allowed
		wantMsg   string
		wantRole  store.Role
	}{
		{"alice", "a", store.RoleGuest, nil, "", store.RoleGuest},
		{"alice", "a/sub/deep", store.RoleGuest, nil, "", store.RoleGuest}, // inherited
		{"alice", "a", store.RoleOwner, oci.ErrDenied, "changing things of a needs the owner role; you are guest", 0},
		{"alice", "b", store.RoleGuest, oci.ErrNameUnknown, `group "b" not found`, 0},
		{"alice", "nope", store.RoleGuest, oci.ErrNameUnknown, `group "nope" not found`, 0},
		{"min", "a", store.RoleGuest, oci.ErrNameUnknown, `group "a" not found`, 0}, // below guest reads nothing
		{"subdev", "a", store.RoleGuest, oci.ErrNameUnknown, `group "a" not found`, 0},
		{"subdev", "a/sub/deep", store.RoleDeveloper, nil, "", store.RoleDeveloper},
		{"nopw", "a/sub", store.RoleOwner, nil, "", store.RoleOwner},
		{"root", "b", store.RoleOwner, nil, "", store.RoleNone}, // an admin who is no member
	} {
		p := Principal{User: ptr(w.users[c.who])}
		g, role, err := svc.AuthorizeGroup(ctx, p, c.path, c.need, "changing things")
		switch {
		case c.wantErr == nil && (err != nil || g.Path != c.path || role != c.wantRole):
			t.Errorf("%s on %s: %v, %v, %v; want allowed with role %v", c.who, c.path, g.Path, role, err, c.wantRole)
		case c.wantErr != nil && (!errors.Is(err, c.wantErr) || !strings.HasSuffix(err.Error(), c.wantMsg)):
			t.Errorf("%s on %s: %v; want %v ending %q", c.who, c.path, err, c.wantErr, c.wantMsg)
		}
	}

	// A group access token acts with its role in its group and below.
	tok := w.tokens["group-sub-reporter"]
	p := Principal{Token: &tok}
	if _, role, err := svc.AuthorizeGroup(ctx, p, "a/sub/deep", store.RoleReporter, "x"); err != nil || role != store.RoleReporter {
		t.Errorf("group token in a subgroup: %v, %v", role, err)
	}
	if _, _, err := svc.AuthorizeGroup(ctx, p, "a", store.RoleGuest, "x"); !errors.Is(err, oci.ErrNameUnknown) {
		t.Errorf("group token above its group: %v", err)
	}
}

func TestAuthorizeAPI(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, c := range []struct {
		token string
		want  string // "" allowed
	}{
		{"alice-api", ""},
		{"root-api", ""},
		{"alice-read", "lacks the api scope"},
		{"deploy-a", "deploy tokens cannot use the admin API"},
		{"", "needs an access token"},
	} {
		var p Principal
		if c.token != "" {
			tok := w.tokens[c.token]
			p.Token = &tok
			if tok.Kind == store.TokenPersonal {
				p.User = ptr(w.users[strings.Split(c.token, "-")[0]])
			}
		}
		err := AuthorizeAPI(p)
		if (c.want == "") != (err == nil) || (err != nil && (!errors.Is(err, oci.ErrUnauthorized) || !strings.Contains(err.Error(), c.want))) {
			t.Errorf("%q: %v, want %q", c.token, err, c.want)
		}
	}
	if err := RequireAdmin(Principal{User: ptr(w.users["alice"])}, "listing users"); err == nil || !strings.HasSuffix(err.Error(), "listing users needs an instance admin; you are alice") {
		t.Errorf("RequireAdmin(alice) = %v", err)
	}
	if err := RequireAdmin(Principal{User: ptr(w.users["root"])}, "x"); err != nil {
		t.Errorf("RequireAdmin(root) = %v", err)
	}
}

func TestReadableGroups(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	all, err := w.st.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sub := w.tokens["group-sub-reporter"]
	guestTok := w.tokens["group-a-minimal"]
	for _, c := range []struct {
		name string
		p    Principal
		want string
	}{
		{"admin", Principal{User: ptr(w.users["root"])}, "a,a/sub,a/sub/deep,b"},
		{"guest of a", Principal{User: ptr(w.users["alice"])}, "a,a/sub,a/sub/deep"},
		{"developer of a/sub", Principal{User: ptr(w.users["subdev"])}, "a/sub,a/sub/deep"},
		{"minimal access", Principal{User: ptr(w.users["min"])}, ""},
		{"group token of a/sub", Principal{Token: &sub}, "a/sub,a/sub/deep"},
		{"minimal group token", Principal{Token: &guestTok}, ""},
	} {
		var ms []store.Member
		if c.p.User != nil {
			if ms, err = w.st.MembershipsOfUser(ctx, c.p.User.ID); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for _, g := range ReadableGroups(c.p, all, ms) {
			got = append(got, g.Path)
		}
		// The rule must agree with AuthorizeGroup, one group at a time.
		for _, g := range all {
			_, _, err := w.service(t0).AuthorizeGroup(ctx, c.p, g.Path, store.RoleGuest, "reading")
			if readable := strings.Contains(","+strings.Join(got, ",")+",", ","+g.Path+","); readable != (err == nil) {
				t.Errorf("%s: %s readable %v, AuthorizeGroup says %v", c.name, g.Path, readable, err)
			}
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s: %v, want %s", c.name, got, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
