package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

const day = 24 * time.Hour

// A group's TTL policy removes the manifests and blob references of the
// group not read for its TTL; a read the caches have not written yet
// counts. A group whose policy is disabled keeps everything. The files go
// at the next garbage collection.
func TestExpireRemovesWhatWasNotReadWithinTheTTL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newFixture(t, fixtureOptions{})
	a, b, c := f.group(t, "a"), f.group(t, "b"), f.group(t, "c") // c keeps the default policy
	f.setTTL(t, a, true, 7)
	f.setTTL(t, b, false, 7)

	manifests := []struct {
		ref     string
		readAt  time.Time
		expired bool
	}{
		{"read-8-days-ago", now.Add(-8 * day), true},
		{"read-just-over-7-days-ago", now.Add(-7*day - time.Second), true},
		{"read-7-days-ago", now.Add(-7 * day), false},
		{"read-6-days-ago", now.Add(-6 * day), false},
	}
	for _, m := range manifests {
		for _, g := range []int64{a, b, c} {
			f.manifest(t, g, m.ref, m.readAt)
		}
	}
	old := f.blob(t, content("old", 64), now.Add(-8*day), a, b, c)
	fresh := f.blob(t, content("fresh", 64), now.Add(-6*day), a)
	// Written as read 8 days ago, but read just now through the cache.
	justRead := f.blob(t, content("just read", 64), now.Add(-8*day), a)
	f.read(t, a, justRead)

	res, err := f.m.Expire(ctx)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	if want := (lifecycle.ExpireResult{Groups: 2, Manifests: 2, Blobs: 1}); res != want {
		t.Errorf("Expire = %+v, want %+v", res, want)
	}
	for _, m := range manifests {
		if got := f.hasManifest(t, a, m.ref); got == m.expired {
			t.Errorf("group a's manifest %s: kept %v, want %v", m.ref, got, !m.expired)
		}
		for name, g := range map[string]int64{"b (policy disabled)": b, fmt.Sprintf("c (default policy, %d days)", store.DefaultTTLDays): c} {
			if !f.hasManifest(t, g, m.ref) {
				t.Errorf("group %s's manifest %s was removed", name, m.ref)
			}
		}
	}
	for _, r := range []struct {
		name  string
		group int64
		d     oci.Digest
		kept  bool
	}{
		{"group a's old blob", a, old, false},
		{"group a's blob read 6 days ago", a, fresh, true},
		{"group a's blob read just now", a, justRead, true},
		{"group b's old blob", b, old, true},
		{"group c's old blob", c, old, true},
	} {
		if got := f.hasRef(t, r.group, r.d); got != r.kept {
			t.Errorf("%s: reference kept %v, want %v", r.name, got, r.kept)
		}
	}
	if !f.hasFile(t, old) {
		t.Errorf("Expire deleted the file of a blob other groups still reference")
	}

	// Once no group references it, the file goes at the next collection.
	f.setTTL(t, b, true, 7)
	f.setTTL(t, c, true, 7)
	if _, err := f.m.Expire(ctx); err != nil {
		t.Fatal(err)
	}
	if f.hasRef(t, b, old) || f.hasRef(t, c, old) {
		t.Fatalf("groups b and c still reference the old blob after their policies were enabled")
	}
	if !f.hasFile(t, old) {
		t.Errorf("Expire deleted a blob file; that is garbage collection's work")
	}
	gc, err := f.m.CollectGarbage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if gc.Deleted != 1 || f.hasFile(t, old) {
		t.Errorf("collection after expiry deleted %d files, the old blob's file kept %v; want that file deleted", gc.Deleted, f.hasFile(t, old))
	}
}

// failingExpiry fails the expiry of one group.
type failingExpiry struct {
	*store.Store
	group int64
	err   error
}

func (s failingExpiry) ExpireGroupCache(ctx context.Context, groupID int64, before time.Time) (store.Expired, error) {
	if groupID == s.group {
		return store.Expired{}, s.err
	}
	return s.Store.ExpireGroupCache(ctx, groupID, before)
}

// A group whose expiry fails does not keep the other groups' policies from
// being applied; its error is returned.
func TestExpireGoesOnPastAGroupThatFails(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	errBroken := errors.New("database is locked")
	broken := &failingExpiry{err: errBroken}
	f := newFixture(t, fixtureOptions{wrap: func(s *store.Store) managerStore {
		broken.Store = s
		return broken
	}})
	a, b := f.group(t, "a"), f.group(t, "b")
	broken.group = a
	f.setTTL(t, a, true, 1)
	f.setTTL(t, b, true, 1)
	d := f.blob(t, content("old", 64), now.Add(-2*day), a, b)

	res, err := f.m.Expire(ctx)
	if !errors.Is(err, errBroken) {
		t.Errorf("Expire: %v, want the failure of group a", err)
	}
	if res.Groups != 2 || res.Blobs != 1 {
		t.Errorf("Expire = %+v, want 2 groups tried and group b's blob expired", res)
	}
	if f.hasRef(t, b, d) {
		t.Errorf("group b's old blob was kept because group a's expiry failed")
	}
	if !f.hasRef(t, a, d) {
		t.Errorf("group a's old blob was removed although its expiry failed")
	}
}

// Garbage collection deletes the files no group or upstream references,
// and keeps those referenced and those a client is reading.
func TestCollectGarbage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newFixture(t, fixtureOptions{})
	a := f.group(t, "a")
	reg, err := f.st.CreateVirtualRegistry(ctx, store.VirtualRegistry{GroupID: a, Name: "hub"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	up, err := f.st.AddVirtualUpstream(ctx, store.VirtualUpstream{RegistryID: reg.ID, Name: "hub", URL: "https://registry.example"}, 10)
	if err != nil {
		t.Fatal(err)
	}

	referenced := f.blob(t, content("referenced", 100), now, a)
	byUpstream := f.blob(t, content("upstream's", 200), now)
	if err := f.st.UpstreamCache().PutBlob(ctx, store.Blob{OwnerID: up.ID, Digest: byUpstream, Size: 200, ReadAt: now}); err != nil {
		t.Fatal(err)
	}
	unreferenced := f.blob(t, content("unreferenced", 300), now)
	// A client reads a blob whose reference is removed meanwhile.
	reading := f.blob(t, content("being read", 400), now, a)
	b := f.serve(t, a, reading)
	if err := f.st.DeleteBlob(ctx, a, reading); err != nil {
		t.Fatal(err)
	}

	res, err := f.m.CollectGarbage(ctx)
	if err != nil {
		t.Fatalf("CollectGarbage: %v", err)
	}
	if want := (lifecycle.GCResult{Scanned: 4, Deleted: 1, FreedBytes: 300}); res != want {
		t.Errorf("CollectGarbage = %+v, want %+v", res, want)
	}
	for _, r := range []struct {
		name string
		d    oci.Digest
		kept bool
	}{
		{"a group's blob", referenced, true},
		{"an upstream's blob", byUpstream, true},
		{"the unreferenced blob", unreferenced, false},
		{"the unreferenced blob a client reads", reading, true},
	} {
		if got := f.hasFile(t, r.d); got != r.kept {
			t.Errorf("%s: file kept %v, want %v", r.name, got, r.kept)
		}
	}
	if d := receive(t, f.deleted, "AfterDelete"); d != unreferenced {
		t.Errorf("AfterDelete saw %s, want %s", d, unreferenced)
	}

	// Once the client is done, the file goes.
	b.Close()
	res, err = f.m.CollectGarbage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 1 || res.FreedBytes != 400 || f.hasFile(t, reading) {
		t.Errorf("collection after the client closed: %+v, file kept %v; want it deleted", res, f.hasFile(t, reading))
	}
}

// The size cap evicts the least recently read blobs, over all groups, until
// the stored blobs fit; it counts reads not written yet, counts a shared
// blob once and evicts it from every group, and skips blobs in use.
func TestSizeCap(t *testing.T) {
	t.Parallel()
	// Four blobs of 100 bytes, 400 in all, read in the order A, B, C, D.
	for _, r := range []sizeCapRow{
		{name: "least recently read first", max: 250, evicted: []string{"A", "B"}, after: 200},
		{name: "a read not yet written counts", max: 250, readNow: []string{"A"}, evicted: []string{"B", "C"}, after: 200},
		{name: "a blob in use is skipped", max: 250, inUse: []string{"A"}, evicted: []string{"B", "C"}, after: 200},
		{name: "everything in use: stays over the cap", max: 50, inUse: []string{"A", "B", "C", "D"}, after: 400},
		{name: "under the cap: nothing", max: 400, after: 400},
	} {
		// Candidates are read a page at a time; pages of 1 and 3 cross
		// page boundaries in every case.
		for _, page := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("%s/pages of %d", r.name, page), func(t *testing.T) {
				t.Parallel()
				sizeCapCase(t, r, page)
			})
		}
	}
}

type sizeCapRow struct {
	name    string
	max     int64
	inUse   []string // served and held open, their read written while still the oldest
	readNow []string // read through the cache just before, not written yet
	evicted []string
	after   int64
}

// sizeCapCase runs one row of TestSizeCap, reading candidates page at a
// time (0: the default).
func sizeCapCase(t *testing.T, r sizeCapRow, page int) {
	ctx := t.Context()
	f := newFixture(t, fixtureOptions{lifecycle: lifecycle.Options{MaxSize: r.max, SizeCapPage: page}})
	a, b := f.group(t, "a"), f.group(t, "b")
	blobs := map[string]oci.Digest{}
	for i, name := range []string{"A", "B", "C", "D"} {
		blobs[name] = f.blob(t, content(name, 100), now.Add(time.Duration(i-5)*time.Hour), a)
	}
	// A is shared: group b read it earlier than group a.
	f.reference(t, b, blobs["A"], 100, now.Add(-6*time.Hour))

	f.clock.Set(now.Add(-10 * time.Hour))
	for _, name := range r.inUse {
		f.serve(t, a, blobs[name])
	}
	f.cache.FlushReads(ctx)
	f.clock.Set(now)
	for _, name := range r.readNow {
		f.read(t, a, blobs[name])
	}

	res, err := f.m.EnforceSizeCap(ctx)
	if err != nil {
		t.Fatalf("EnforceSizeCap: %v", err)
	}
	want := lifecycle.CapResult{Before: 400, After: r.after, Evicted: len(r.evicted), EvictedBytes: 400 - r.after}
	if res != want {
		t.Errorf("EnforceSizeCap = %+v, want %+v", res, want)
	}
	evicted := map[string]bool{}
	for _, name := range r.evicted {
		evicted[name] = true
	}
	for name, d := range blobs {
		if f.hasRef(t, a, d) == evicted[name] || f.hasFile(t, d) == evicted[name] {
			t.Errorf("blob %s: reference kept %v, file kept %v; want evicted %v", name, f.hasRef(t, a, d), f.hasFile(t, d), evicted[name])
		}
	}
	if f.hasRef(t, b, blobs["A"]) == evicted["A"] {
		t.Errorf("group b's reference to the shared blob A: kept %v, want evicted %v", !evicted["A"], evicted["A"])
	}
	if n, err := f.st.CachedBlobBytes(ctx); err != nil || n != r.after {
		t.Errorf("stored blob bytes after the cap: %d, %v; want %d", n, err, r.after)
	}
}

// Of several replicas sharing a database, one at a time runs the jobs; the
// others are told so and change nothing.
func TestJobsRunOnOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	inside, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	f := newFixture(t, fixtureOptions{lifecycle: lifecycle.Options{
		MaxSize: 1,
		// The first collection stops inside its run, holding the lock.
		AfterDelete: func(ctx context.Context, d oci.Digest) {
			first.Do(func() {
				inside <- struct{}{}
				<-release
			})
		},
	}})
	a := f.group(t, "a")
	f.setTTL(t, a, true, 1)
	old := f.blob(t, content("old", 100), now.Add(-2*day), a)
	f.blob(t, content("unreferenced", 100), now)
	other := f.manager(f.st, lifecycle.Options{MaxSize: 1})

	running := make(chan error, 1)
	go func() {
		_, err := f.m.CollectGarbage(ctx)
		running <- err
	}()
	receive(t, inside, "the first replica's collection")
	if _, err := other.Expire(ctx); !errors.Is(err, lifecycle.ErrElsewhere) {
		t.Errorf("Expire on another replica: %v, want %v", err, lifecycle.ErrElsewhere)
	}
	if _, err := other.CollectGarbage(ctx); !errors.Is(err, lifecycle.ErrElsewhere) {
		t.Errorf("CollectGarbage on another replica: %v, want %v", err, lifecycle.ErrElsewhere)
	}
	if _, err := other.EnforceSizeCap(ctx); !errors.Is(err, lifecycle.ErrElsewhere) {
		t.Errorf("EnforceSizeCap on another replica: %v, want %v", err, lifecycle.ErrElsewhere)
	}
	if !f.hasRef(t, a, old) || !f.hasFile(t, old) {
		t.Errorf("a replica that did not hold the lock changed the cache")
	}
	close(release)
	if err := receive(t, running, "the first replica's collection"); err != nil {
		t.Fatal(err)
	}
	<-f.deleted

	// The lock is free again.
	if res, err := other.Expire(ctx); err != nil || res.Blobs != 1 {
		t.Errorf("Expire once the lock is free: %+v, %v; want the old blob expired", res, err)
	}
}

// receive returns the next value of ch; none within patience is a hang.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("%s: nothing within %s", what, patience)
		var zero T
		return zero
	}
}
