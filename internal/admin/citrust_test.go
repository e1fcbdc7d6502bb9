package admin

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// TestCITrustRules: an instance admin manages every trust; an owner only
// trusts of groups they own; a trust taking its group from a claim needs an
// instance admin; others see nothing.
func TestCITrustRules(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "dproxy.db"), testBox(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := New(st, nil, auth.NewService(st, nil, auth.ServiceOptions{}), Options{CITrusts: st})
	for _, p := range []string{"acme", "acme/sub", "other"} {
		if _, err := svc.CreateGroup(ctx, System, p); err != nil {
			t.Fatal(err)
		}
	}
	actor := func(name, group string, role store.Role) Actor {
		u, err := svc.CreateUser(ctx, System, UserInput{Username: name})
		if err != nil {
			t.Fatal(err)
		}
		if group != "" {
			if _, err := svc.SetMember(ctx, System, group, name, role); err != nil {
				t.Fatal(err)
			}
		}
		su, _ := st.UserByUsername(ctx, u.Username)
		return Actor{User: &su}
	}
	owner := actor("olive", "acme", store.RoleOwner)
	maint := actor("max", "acme", store.RoleMaintainer)
	outsider := actor("oscar", "other", store.RoleOwner)

	trust := func(name, group string) NewCITrust {
		return NewCITrust{Name: name, Issuer: "https://gitlab.example", Audience: "https://dproxy.example", GroupPath: group}
	}
	created, err := svc.CreateCITrust(ctx, owner, trust("acme-ci", "acme/sub"))
	if err != nil {
		t.Fatalf("owner creates a trust of a subgroup: %v", err)
	}
	if created.Role != store.RoleGuest || created.MaxLifetime != time.Hour || created.GroupPath != "acme/sub" {
		t.Errorf("defaults: %+v", created)
	}
	if _, err := svc.CreateCITrust(ctx, maint, trust("m", "acme")); !errors.Is(err, ErrForbidden) && !errors.Is(err, ErrNotFound) {
		t.Errorf("maintainer: %v, want a refusal", err)
	}
	if _, err := svc.CreateCITrust(ctx, owner, trust("x", "other")); err == nil {
		t.Error("an owner created a trust of a group they do not own")
	}
	claim := NewCITrust{Name: "any", Issuer: "https://gitlab.example", Audience: "aud", GroupClaim: "namespace_path"}
	if _, err := svc.CreateCITrust(ctx, owner, claim); !errors.Is(err, ErrForbidden) {
		t.Errorf("owner creating a group-claim trust: %v, want ErrForbidden", err)
	}
	if _, err := svc.CreateCITrust(ctx, System, claim); err != nil {
		t.Errorf("admin creating a group-claim trust: %v", err)
	}
	if _, err := svc.CreateCITrust(ctx, System, trust("acme-ci", "other")); !errors.Is(err, ErrConflict) {
		t.Errorf("name taken: %v, want ErrConflict", err)
	}
	for _, bad := range []NewCITrust{
		{Name: "Bad Name", Issuer: "https://i", Audience: "a", GroupPath: "acme"},
		{Name: "b", Issuer: "ftp://i", Audience: "a", GroupPath: "acme"},
		{Name: "b", Issuer: "https://i", Audience: "", GroupPath: "acme"},
		{Name: "b", Issuer: "https://i", Audience: "a"},
		{Name: "b", Issuer: "https://i", Audience: "a", GroupPath: "acme", GroupClaim: "x"},
		{Name: "b", Issuer: "https://i", Audience: "a", GroupPath: "acme", Role: store.RoleMinimalAccess},
		{Name: "b", Issuer: "https://i", Audience: "a", GroupPath: "acme", MaxLifetime: 48 * time.Hour},
		{Name: "b", Issuer: "https://i", Audience: "a", GroupPath: "acme", Claims: []store.ClaimRule{{Key: "", Glob: "x"}}},
	} {
		if _, err := svc.CreateCITrust(ctx, System, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateCITrust(%+v): %v, want ErrInvalid", bad, err)
		}
	}

	names := func(a Actor) []string {
		ts, err := svc.CITrusts(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tr := range ts {
			out = append(out, tr.Name)
		}
		return out
	}
	if got := names(System); len(got) != 2 {
		t.Errorf("admin sees %v, want both trusts", got)
	}
	if got := names(owner); len(got) != 1 || got[0] != "acme-ci" {
		t.Errorf("owner sees %v, want only acme-ci", got)
	}
	if got := names(maint); len(got) != 0 {
		t.Errorf("maintainer sees %v, want none (owners manage trusts)", got)
	}
	if got := names(outsider); len(got) != 0 {
		t.Errorf("owner of another group sees %v", got)
	}
	if _, err := svc.DeleteCITrust(ctx, outsider, "acme-ci"); !errors.Is(err, ErrNotFound) {
		t.Errorf("outsider deleting: %v, want ErrNotFound", err)
	}
	if _, err := svc.DeleteCITrust(ctx, owner, "any"); !errors.Is(err, ErrNotFound) {
		t.Errorf("owner deleting an admin's group-claim trust: %v, want ErrNotFound", err)
	}
	if _, err := svc.DeleteCITrust(ctx, owner, "acme-ci"); err != nil {
		t.Errorf("owner deleting their trust: %v", err)
	}
	if _, err := svc.CITrust(ctx, System, "acme-ci"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted trust: %v", err)
	}
}
