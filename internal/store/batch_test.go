package store

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInBatches(t *testing.T) {
	t.Parallel()
	type call struct {
		in   string
		args []any
	}
	collect := func(ids []int64) []call {
		var calls []call
		if err := inBatches(ids, func(in string, args []any) error {
			calls = append(calls, call{in, args})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return calls
	}
	if calls := collect(nil); len(calls) != 0 {
		t.Errorf("no ids made %d reads, want none", len(calls))
	}
	// Distinct ids, padded to 8 with the last one.
	calls := collect([]int64{5, 3, 5, 9})
	if len(calls) != 1 || calls[0].in != "$1, $2, $3, $4, $5, $6, $7, $8" ||
		fmt.Sprint(calls[0].args) != "[3 5 9 9 9 9 9 9]" {
		t.Errorf("ids 5 3 5 9: reads %+v, want one of $1…$8 with 3 5 9 padded by 9", calls)
	}
	// More than maxBatch ids: one read per maxBatch, each a power of two.
	ids := make([]int64, maxBatch+20)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	calls = collect(ids)
	if len(calls) != 2 || len(calls[0].args) != maxBatch || len(calls[1].args) != 32 ||
		strings.Count(calls[1].in, "$") != 32 || calls[1].args[0] != int64(maxBatch+1) || calls[1].args[31] != int64(maxBatch+20) {
		t.Errorf("%d ids: %d reads of %d and %d args, want %d and 32", len(ids), len(calls), len(calls[0].args), len(calls[len(calls)-1].args), maxBatch)
	}
}

// contractBatchedReads: the batched reads of several groups answer what
// the reads of one group answer, leave out unknown groups, and take more
// ids than one batch holds.
func contractBatchedReads(t *testing.T, s *Store) {
	ctx := t.Context()
	acme, ci, other := mustGroup(t, s, "acme"), mustGroup(t, s, "acme/ci"), mustGroup(t, s, "other")
	for _, m := range []Manifest{testManifest(acme.ID, "library/alpine", "latest", "{}"), testManifest(acme.ID, "library/alpine", "3", "{\"a\":1}"),
		testManifest(ci.ID, "library/redis", "7", "{\"b\":22}")} {
		if _, err := s.PutManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []Blob{{OwnerID: acme.ID, Digest: digestOf("a"), Size: 100}, {OwnerID: ci.ID, Digest: digestOf("a"), Size: 100},
		{OwnerID: ci.ID, Digest: digestOf("c"), Size: 3 << 31}} {
		if err := s.PutBlob(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UpdateProxySetting(ctx, ProxySetting{GroupID: ci.ID, Enabled: true, Identity: "bot", Secret: "s3cret",
		FreshnessWindow: 90 * time.Second, AllowAnonymousPull: true, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateTTLPolicy(ctx, TTLPolicy{GroupID: other.ID, Enabled: false, TTLDays: 7, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}

	// Many unknown ids sorting before the known ones: the known ones come
	// in a second batch.
	ids := []int64{acme.ID, ci.ID, other.ID, acme.ID}
	for i := range int64(maxBatch + 10) {
		ids = append(ids, -1-i)
	}
	usages, err := s.GroupUsages(ctx, ids)
	if err != nil {
		t.Fatalf("GroupUsages: %v", err)
	}
	settings, err := s.ProxySettings(ctx, ids)
	if err != nil {
		t.Fatalf("ProxySettings: %v", err)
	}
	policies, err := s.TTLPolicies(ctx, ids)
	if err != nil {
		t.Fatalf("TTLPolicies: %v", err)
	}
	known := []int64{acme.ID, ci.ID, other.ID}
	for name, keys := range map[string][]int64{
		"GroupUsages": slices.Sorted(maps.Keys(usages)), "ProxySettings": slices.Sorted(maps.Keys(settings)),
		"TTLPolicies": slices.Sorted(maps.Keys(policies)),
	} {
		if !slices.Equal(keys, known) {
			t.Errorf("%s answered groups %v, want %v", name, keys, known)
		}
	}
	for _, id := range known {
		u, err := s.GroupUsage(ctx, id)
		if err != nil || usages[id] != u {
			t.Errorf("group %d: batched usage %+v, single %+v (%v)", id, usages[id], u, err)
		}
		p, err := s.ProxySetting(ctx, id)
		if err != nil || settings[id] != p {
			t.Errorf("group %d: batched setting %+v, single %+v (%v)", id, settings[id], p, err)
		}
		ttl, err := s.TTLPolicy(ctx, id)
		if err != nil || policies[id] != ttl {
			t.Errorf("group %d: batched ttl policy %+v, single %+v (%v)", id, policies[id], ttl, err)
		}
	}
	// The values themselves, so that equal answers are not equally wrong.
	if u := usages[ci.ID]; u != (Usage{Manifests: 1, Images: 1, ManifestBytes: 8, Blobs: 2, BlobBytes: 100 + 3<<31}) {
		t.Errorf("usage of acme/ci = %+v", u)
	}
	if p := settings[ci.ID]; !p.Enabled || p.Identity != "bot" || p.Secret != "s3cret" || p.FreshnessWindow != 90*time.Second || !p.AllowAnonymousPull {
		t.Errorf("setting of acme/ci = %+v", p)
	}
	if p := policies[other.ID]; p.Enabled || p.TTLDays != 7 || !p.UpdatedAt.Equal(t0) {
		t.Errorf("ttl policy of other = %+v", p)
	}

	for name, read := range map[string]func([]int64) (int, error){
		"GroupUsages":   func(ids []int64) (int, error) { m, err := s.GroupUsages(ctx, ids); return len(m), err },
		"ProxySettings": func(ids []int64) (int, error) { m, err := s.ProxySettings(ctx, ids); return len(m), err },
		"TTLPolicies":   func(ids []int64) (int, error) { m, err := s.TTLPolicies(ctx, ids); return len(m), err },
	} {
		if n, err := read(nil); n != 0 || err != nil {
			t.Errorf("%s(no ids) = %d entries, %v; want none", name, n, err)
		}
	}
}
