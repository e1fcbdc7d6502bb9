package store

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// runCITrustContract is the behaviour of CI trust policies every backend
// must have.
func runCITrustContract(t *testing.T, open func(t *testing.T) *Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *Store)
	}{
		{"CreateReadDelete", contractCITrustCreateReadDelete},
		{"Errors", contractCITrustErrors},
		{"AuthGeneration", contractCITrustAuthGeneration},
		{"GroupCascade", contractCITrustGroupCascade},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func TestSQLiteCITrustContract(t *testing.T) {
	t.Parallel()
	runCITrustContract(t, openTestSQLite)
}

func TestPostgresCITrustContract(t *testing.T) {
	t.Parallel()
	runCITrustContract(t, openTestPostgres)
}

func contractCITrustCreateReadDelete(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	fixed, err := s.CreateCITrust(ctx, CITrust{Name: "gitlab-acme", Issuer: "https://gitlab.example", Audience: "https://dproxy.example",
		GroupID: g.ID, Role: RoleGuest, Claims: []ClaimRule{{Key: "ref_protected", Glob: "true"}, {Key: "project_path", Glob: "acme/*"}},
		MaxLifetime: 90*time.Minute + 500*time.Millisecond, CreatedAt: t0})
	if err != nil || fixed.ID == 0 {
		t.Fatalf("CreateCITrust = %+v, %v", fixed, err)
	}
	if fixed.MaxLifetime != 90*time.Minute {
		t.Errorf("MaxLifetime = %v, want whole seconds 1h30m", fixed.MaxLifetime)
	}
	byClaim, err := s.CreateCITrust(ctx, CITrust{Name: "gitlab-any", Issuer: "https://gitlab.example", Audience: "aud",
		GroupClaim: "namespace_path", Role: RoleReporter, MaxLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if byClaim.Claims == nil || len(byClaim.Claims) != 0 {
		t.Errorf("no rules = %#v, want an empty list", byClaim.Claims)
	}
	got, err := s.CITrustByName(ctx, "gitlab-acme")
	if err != nil || !reflect.DeepEqual(got, fixed) {
		t.Errorf("CITrustByName = %+v, %v\nwant %+v", got, err, fixed)
	}
	if got, err := s.CITrustByID(ctx, byClaim.ID); err != nil || !reflect.DeepEqual(got, byClaim) {
		t.Errorf("CITrustByID = %+v, %v\nwant %+v", got, err, byClaim)
	}
	other, err := s.CreateCITrust(ctx, CITrust{Name: "actions", Issuer: "https://token.actions.example", Audience: "aud",
		GroupID: g.ID, Role: RoleGuest, MaxLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	of, err := s.CITrustsByIssuer(ctx, "https://gitlab.example")
	if err != nil || len(of) != 2 || of[0].ID != fixed.ID || of[1].ID != byClaim.ID {
		t.Errorf("CITrustsByIssuer = %+v, %v; want gitlab-acme, gitlab-any", of, err)
	}
	all, err := s.CITrusts(ctx)
	if err != nil || len(all) != 3 || all[0].Name != "actions" || all[1].Name != "gitlab-acme" || all[2].Name != "gitlab-any" {
		t.Errorf("CITrusts = %+v, %v; want 3 by name", all, err)
	}
	if err := s.DeleteCITrust(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CITrustByName(ctx, "actions"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted trust: %v, want ErrNotFound", err)
	}
	if err := s.DeleteCITrust(ctx, other.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v, want ErrNotFound", err)
	}
}

func contractCITrustErrors(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	ok := CITrust{Name: "a", Issuer: "https://i", Audience: "aud", GroupID: g.ID, Role: RoleGuest}
	if _, err := s.CreateCITrust(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateCITrust(ctx, ok); !errors.Is(err, ErrConflict) {
		t.Errorf("same name: %v, want ErrConflict", err)
	}
	missing := ok
	missing.Name, missing.GroupID = "b", 999999
	if _, err := s.CreateCITrust(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown group: %v, want ErrNotFound", err)
	}
	both := ok
	both.Name, both.GroupClaim = "c", "namespace_path"
	if _, err := s.CreateCITrust(ctx, both); err == nil {
		t.Error("a trust with a group and a group claim was stored")
	}
	neither := ok
	neither.Name, neither.GroupID = "d", 0
	if _, err := s.CreateCITrust(ctx, neither); err == nil {
		t.Error("a trust without a group or a group claim was stored")
	}
	if _, err := s.CITrustByName(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown name: %v, want ErrNotFound", err)
	}
}

func contractCITrustAuthGeneration(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	n0, err := s.AuthGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.CreateCITrust(ctx, CITrust{Name: "a", Issuer: "https://i", Audience: "aud", GroupID: g.ID, Role: RoleGuest})
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := s.AuthGeneration(ctx)
	if n1 == n0 {
		t.Error("creating a trust did not change the auth generation")
	}
	if err := s.DeleteCITrust(ctx, tr.ID); err != nil {
		t.Fatal(err)
	}
	if n2, _ := s.AuthGeneration(ctx); n2 == n1 {
		t.Error("deleting a trust did not change the auth generation")
	}
}

func contractCITrustGroupCascade(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	tr, err := s.CreateCITrust(ctx, CITrust{Name: "a", Issuer: "https://i", Audience: "aud", GroupID: g.ID, Role: RoleGuest})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CITrustByID(ctx, tr.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("trust of a deleted group: %v, want ErrNotFound", err)
	}
}
