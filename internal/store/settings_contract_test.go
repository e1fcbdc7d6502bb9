package store

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// ChangeProxySetting writes the fields it is given and no other.
func contractChangeProxySetting(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	base := ProxySetting{GroupID: g.ID, Enabled: true, Identity: "acme-bot", Secret: "dckr_pat_s3cret",
		FreshnessWindow: time.Minute, AllowAnonymousPull: true, UpdatedAt: t0}
	if err := s.UpdateProxySetting(ctx, base); err != nil {
		t.Fatal(err)
	}
	got, err := s.ChangeProxySetting(ctx, g.ID, ProxySettingChange{Enabled: ptr(false)})
	want := base
	want.Enabled = false
	want.UpdatedAt = got.UpdatedAt
	if err != nil || got != want || !got.UpdatedAt.After(t0) {
		t.Errorf("change enabled = %+v, %v; want %+v with UpdatedAt of now", got, err, want)
	}
	if read, err := s.ProxySetting(ctx, g.ID); err != nil || read != got {
		t.Errorf("ProxySetting after the change = %+v, %v; want what ChangeProxySetting returned, %+v", read, err, got)
	}
	got, err = s.ChangeProxySetting(ctx, g.ID, ProxySettingChange{FreshnessWindow: ptr(90 * time.Second), AnonymousPullsUseCredentials: ptr(true)})
	if err != nil || got.FreshnessWindow != 90*time.Second || !got.AnonymousPullsUseCredentials || got.Enabled || got.Secret != base.Secret || !got.AllowAnonymousPull {
		t.Errorf("change window and anonymous credentials = %+v, %v", got, err)
	}
	got, err = s.ChangeProxySetting(ctx, g.ID, ProxySettingChange{Credentials: &HubCredentials{Identity: "new-bot", Secret: "new-s3cret"}, AllowAnonymousPull: ptr(false)})
	if err != nil || got.Identity != "new-bot" || got.Secret != "new-s3cret" || got.AllowAnonymousPull || got.FreshnessWindow != 90*time.Second {
		t.Errorf("change credentials = %+v, %v", got, err)
	}
	var sealed []byte
	if err := s.r.QueryRowContext(ctx, `SELECT secret_sealed FROM dependency_proxy_settings WHERE group_id = $1`, g.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte("new-s3cret")) {
		t.Errorf("stored secret column = %q, want a sealed value without the plaintext", sealed)
	}
	got, err = s.ChangeProxySetting(ctx, g.ID, ProxySettingChange{Credentials: &HubCredentials{}})
	if err != nil || got.Identity != "" || got.Secret != "" || got.FreshnessWindow != 90*time.Second {
		t.Errorf("clear credentials = %+v, %v", got, err)
	}
	if got, err = s.ChangeProxySetting(ctx, g.ID, ProxySettingChange{}); err != nil || got.Identity != "" || !got.AnonymousPullsUseCredentials {
		t.Errorf("empty change = %+v, %v", got, err)
	}
	_, err = s.ChangeProxySetting(ctx, 9999, ProxySettingChange{Enabled: ptr(true)})
	wantErrIs(t, "ChangeProxySetting(unknown group)", err, ErrNotFound)
	if _, err := s.ChangeProxySetting(ctx, g.ID, ProxySettingChange{FreshnessWindow: ptr(-time.Second)}); err == nil {
		t.Error("ChangeProxySetting with a negative freshness window succeeded")
	}
}

// Concurrent changes of different fields of one group all survive: each
// writes only its own field.
func contractChangeSettingsConcurrently(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	const rounds = 20
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds)
	for i := range rounds {
		wg.Go(func() {
			_, err := s.ChangeProxySetting(ctx, g.ID, ProxySettingChange{FreshnessWindow: ptr(time.Duration(i+1) * time.Second)})
			errs <- err
		})
		wg.Go(func() {
			_, err := s.ChangeProxySetting(ctx, g.ID, ProxySettingChange{Enabled: ptr(i%2 == 1)})
			errs <- err
		})
		wg.Go(func() {
			_, err := s.ChangeProxySetting(ctx, g.ID, ProxySettingChange{Credentials: &HubCredentials{Identity: "bot", Secret: "s3cret"}})
			errs <- err
		})
		wg.Go(func() {
			_, err := s.ChangeTTLPolicy(ctx, g.ID, TTLPolicyChange{TTLDays: ptr(7)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The last writers of the window and of enabled are unknown, but no
	// change may have undone another's field.
	got, err := s.ProxySetting(ctx, g.ID)
	if err != nil || got.FreshnessWindow == 0 || got.Identity != "bot" || got.Secret != "s3cret" {
		t.Errorf("after concurrent changes: %+v, %v; want a window, and the credentials", got, err)
	}
	if p, err := s.TTLPolicy(ctx, g.ID); err != nil || p.TTLDays != 7 {
		t.Errorf("TTL policy after concurrent changes: %+v, %v", p, err)
	}
}

func contractChangeTTLPolicy(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	orig, err := s.TTLPolicy(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ChangeTTLPolicy(ctx, g.ID, TTLPolicyChange{TTLDays: ptr(14)})
	if err != nil || got.TTLDays != 14 || got.Enabled != orig.Enabled || !got.CreatedAt.Equal(orig.CreatedAt) {
		t.Errorf("change ttl = %+v, %v; want only the ttl changed from %+v", got, err, orig)
	}
	got, err = s.ChangeTTLPolicy(ctx, g.ID, TTLPolicyChange{Enabled: ptr(!orig.Enabled)})
	if err != nil || got.TTLDays != 14 || got.Enabled == orig.Enabled {
		t.Errorf("change enabled = %+v, %v", got, err)
	}
	if read, err := s.TTLPolicy(ctx, g.ID); err != nil || read != got {
		t.Errorf("TTLPolicy after the change = %+v, %v; want %+v", read, err, got)
	}
	_, err = s.ChangeTTLPolicy(ctx, 9999, TTLPolicyChange{TTLDays: ptr(1)})
	wantErrIs(t, "ChangeTTLPolicy(unknown group)", err, ErrNotFound)
	if _, err := s.ChangeTTLPolicy(ctx, g.ID, TTLPolicyChange{TTLDays: ptr(-1)}); err == nil {
		t.Error("ChangeTTLPolicy with negative days succeeded")
	}
}
