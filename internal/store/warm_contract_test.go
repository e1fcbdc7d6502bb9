package store

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// runWarmContract is the behaviour of warm entries, auto-top settings and
// pull counts every backend must have.
func runWarmContract(t *testing.T, open func(t *testing.T) *Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *Store)
	}{
		{"Entries", contractWarmEntries},
		{"Auto", contractWarmAuto},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func TestSQLiteWarmContract(t *testing.T) {
	t.Parallel()
	runWarmContract(t, openTestSQLite)
}

func TestPostgresWarmContract(t *testing.T) {
	t.Parallel()
	runWarmContract(t, openTestPostgres)
}

func contractWarmEntries(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	if _, ok, err := s.NextWarmDue(ctx); ok || err != nil {
		t.Fatalf("NextWarmDue with no entry = %v, %v; want none", ok, err)
	}
	e, err := s.PutWarmEntry(ctx, WarmEntry{GroupID: g.ID, Image: "library/node", Tag: "20", Platforms: []string{"linux/amd64", "linux/arm64"}, Every: time.Minute})
	if err != nil || e.ID == 0 || e.State != WarmPending || e.CheckedAt != nil || !slices.Equal(e.Platforms, []string{"linux/amd64", "linux/arm64"}) || e.Every != time.Minute {
		t.Fatalf("PutWarmEntry = %+v, %v", e, err)
	}
	if _, err := s.PutWarmEntry(ctx, WarmEntry{GroupID: g.ID + 1000, Image: "library/node", Tag: "20", Every: time.Minute}); !errors.Is(err, ErrNotFound) {
		t.Errorf("PutWarmEntry of an unknown group: %v, want ErrNotFound", err)
	}
	due, err := s.DueWarmEntries(ctx, e.NextAt, 10)
	if err != nil || len(due) != 1 || due[0].ID != e.ID {
		t.Fatalf("DueWarmEntries at its creation = %+v, %v", due, err)
	}
	next := t0.Add(time.Hour)
	if err := s.RecordWarmCheck(ctx, e.ID, WarmCheck{CheckedAt: t0, Digest: "sha256:abc", State: WarmWarmed, Message: "ok", NextAt: next}); err != nil {
		t.Fatal(err)
	}
	if at, ok, err := s.NextWarmDue(ctx); !ok || err != nil || !at.Equal(next) {
		t.Errorf("NextWarmDue = %v, %v, %v; want %v", at, ok, err, next)
	}
	if due, _ := s.DueWarmEntries(ctx, next.Add(-time.Second), 10); len(due) != 0 {
		t.Errorf("due before next_at: %+v", due)
	}
	// An empty digest keeps the last one.
	if err := s.RecordWarmCheck(ctx, e.ID, WarmCheck{CheckedAt: t0, State: WarmFailed, Message: "upstream down", NextAt: next}); err != nil {
		t.Fatal(err)
	}
	es, err := s.WarmEntries(ctx, g.ID)
	if err != nil || len(es) != 1 || es[0].Digest != "sha256:abc" || es[0].State != WarmFailed || es[0].CheckedAt == nil || !es[0].CheckedAt.Equal(t0) {
		t.Fatalf("WarmEntries = %+v, %v", es, err)
	}
	if n, err := s.MakeWarmDue(ctx, g.ID, "library/node", "20", t0); n != 1 || err != nil {
		t.Errorf("MakeWarmDue = %d, %v", n, err)
	}
	if n, err := s.MakeWarmDue(ctx, g.ID, "library/node", "21", t0); n != 0 || err != nil {
		t.Errorf("MakeWarmDue of an unknown tag = %d, %v; want 0", n, err)
	}
	if n, _ := s.CountWarmEntries(ctx); n != 1 {
		t.Errorf("CountWarmEntries = %d, want 1", n)
	}
	if err := s.DeleteWarmEntry(ctx, g.ID, "library/node", "20"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWarmEntry(ctx, g.ID, "library/node", "20"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting it again: %v, want ErrNotFound", err)
	}
}

func contractWarmAuto(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	day := t0.Truncate(24 * time.Hour)
	err := s.CountTagPulls(ctx, []TagPull{
		{GroupID: g.ID, Image: "library/a", Tag: "1", Day: day, Pulls: 2},
		{GroupID: g.ID, Image: "library/b", Tag: "1", Day: day, Pulls: 5},
		{GroupID: g.ID, Image: "library/c", Tag: "1", Day: day.Add(-10 * 24 * time.Hour), Pulls: 50}, // outside the window
		{GroupID: g.ID + 1000, Image: "library/x", Tag: "1", Day: day, Pulls: 9},                     // no such group: dropped
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CountTagPulls(ctx, []TagPull{{GroupID: g.ID, Image: "library/a", Tag: "1", Day: day.Add(time.Hour), Pulls: 4}}); err != nil {
		t.Fatal(err)
	}
	top, err := s.TopPulledTags(ctx, g.ID, day.Add(-7*24*time.Hour), 2)
	if err != nil || len(top) != 2 || top[0] != (PulledTag{"library/a", "1", 6}) || top[1] != (PulledTag{"library/b", "1", 5}) {
		t.Fatalf("TopPulledTags = %+v, %v; want a:1 (6) then b:1 (5)", top, err)
	}

	a := WarmAuto{GroupID: g.ID, Top: 2, Window: 7 * 24 * time.Hour, Every: time.Hour}
	if err := s.SetWarmAuto(ctx, a); err != nil {
		t.Fatal(err)
	}
	if stale, err := s.StaleWarmAutos(ctx, t0); err != nil || len(stale) != 1 || stale[0].RefreshedAt != nil {
		t.Fatalf("StaleWarmAutos before a refresh = %+v, %v", stale, err)
	}
	// A manual entry of a chosen tag stays manual.
	if _, err := s.PutWarmEntry(ctx, WarmEntry{GroupID: g.ID, Image: "library/b", Tag: "1", Every: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := s.RefreshWarmAuto(ctx, a, top, t0); err != nil {
		t.Fatal(err)
	}
	es, _ := s.WarmEntries(ctx, g.ID)
	if len(es) != 2 || !es[0].Auto || es[0].Image != "library/a" || es[1].Auto || es[1].Every != time.Minute {
		t.Fatalf("entries after the refresh = %+v; want auto a:1 and the manual b:1 unchanged", es)
	}
	if stale, _ := s.StaleWarmAutos(ctx, t0.Add(-time.Hour)); len(stale) != 0 {
		t.Errorf("refreshed setting still stale: %+v", stale)
	}
	// Refreshed with other tags, the auto entries not chosen go.
	if err := s.RefreshWarmAuto(ctx, a, []PulledTag{{Image: "library/c", Tag: "1"}}, t0); err != nil {
		t.Fatal(err)
	}
	es, _ = s.WarmEntries(ctx, g.ID)
	var refs []string
	for _, e := range es {
		refs = append(refs, e.Image+":"+e.Tag)
	}
	if !slices.Equal(refs, []string{"library/b:1", "library/c:1"}) {
		t.Errorf("entries after the second refresh = %v", refs)
	}
	if n, err := s.PruneTagPulls(ctx, day.Add(-7*24*time.Hour)); n != 1 || err != nil {
		t.Errorf("PruneTagPulls before a week ago = %d, %v; want the one older row", n, err)
	}
	if err := s.DeleteWarmAuto(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	es, _ = s.WarmEntries(ctx, g.ID)
	if len(es) != 1 || es[0].Auto {
		t.Errorf("after DeleteWarmAuto: %+v; want the manual entry alone", es)
	}
	if _, err := s.WarmAuto(ctx, g.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("WarmAuto after delete: %v, want ErrNotFound", err)
	}
}
