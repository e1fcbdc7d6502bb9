package app_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// getBlob starts a GET of fx's layer from base with fx's registry token.
func getBlob(t *testing.T, base string, fx blobFixture) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+fx.path, nil)
	req.Header.Set("Authorization", "Bearer "+fx.jwt)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		t.Fatalf("GET %s: %s", fx.path, res.Status)
	}
	return res
}

// readRest reads the rest of res's body after the head bytes already read,
// and fails the test unless the whole is fx's layer.
func readRest(t *testing.T, res *http.Response, head []byte, fx blobFixture) {
	t.Helper()
	rest, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("read the rest of the layer: %v", err)
	}
	if got := digestOf(append(head, rest...)); got != fx.digest.String() {
		t.Fatalf("the client got %d bytes hashing to %s, want the layer %s", len(head)+len(rest), got, fx.digest)
	}
}

// collectGarbage runs a collection on e. Another test's replicas, sharing
// the PostgreSQL server, may hold the lifecycle lock for a moment: then it
// tries again.
func collectGarbage(t *testing.T, e *env) lifecycle.GCResult {
	t.Helper()
	var res lifecycle.GCResult
	var err error
	waitFor(t, "the lifecycle lock", func() bool {
		res, err = e.app.Lifecycle.CollectGarbage(context.Background())
		return !errors.Is(err, lifecycle.ErrElsewhere)
	})
	if err != nil {
		t.Fatalf("collect garbage: %v", err)
	}
	return res
}

// A purge through replica 2 while replica 1 downloads a blob for the group:
// replica 1's commit must not add the purged group's reference back. The
// client that was pulling still gets its bytes.
func TestReplicaPurgeStopsAnotherReplicasDownload(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	rs := c.replicas(t, 2, up)
	r1, r2 := rs[0], rs[1]
	fx := r1.aliceBlob("big", 4<<20)
	d := oci.Digest(fx.digest.String())
	hold := up.HoldBlob(fx.digest.String(), 1<<20)

	res := getBlob(t, r1.srv.URL, fx)
	<-hold.Reached() // replica 1's download is under way

	req, _ := http.NewRequest(http.MethodDelete, r2.srv.URL+"/api/v4/groups/acme/dependency_proxy/cache", nil)
	req.Header.Set("Authorization", "Bearer "+r1.adminToken())
	if pres, err := http.DefaultClient.Do(req); err != nil || pres.StatusCode != http.StatusAccepted {
		t.Fatalf("purge through replica 2: %v %v", pres, err)
	}

	hold.Release()
	readRest(t, res, nil, fx)
	waitFor(t, "replica 1's download to be committed", func() bool { return !r1.downloading() })

	ctx := context.Background()
	if _, err := r1.app.Blobs.Stat(ctx, d); err != nil {
		t.Fatalf("the downloaded blob is not in the bucket: %v", err) // the commit ran
	}
	g, err := r2.app.Store.GroupByPath(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := r2.app.Store.Blob(ctx, g.ID, d); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the group's reference exists after the purge (%+v, %v): replica 1's commit added it back", b, err)
	}
	if u, err := r2.app.Store.GroupUsage(ctx, g.ID); err != nil || u.Blobs != 0 {
		t.Errorf("group usage after the purge = %+v, %v; want no blobs", u, err)
	}

	// A pull after the purge is a new use of the cache, recorded as usual.
	res = getBlob(t, r2.srv.URL, fx)
	readRest(t, res, nil, fx)
	waitFor(t, "replica 2's download to be committed", func() bool { return !r2.downloading() })
	if _, err := r2.app.Store.Blob(ctx, g.ID, d); err != nil {
		t.Errorf("the reference of a pull after the purge: %v", err)
	}
}

// Garbage collection on replica 1 must not delete an object replica 2 is
// handing out: a file stays for the grace period after it was first found
// unreferenced, and goes at a collection after that.
func TestReplicaGCKeepsWhatAnotherReplicaServes(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	clock := testclock.New(time.Now())
	r1 := newEnv(t, envOptions{keepUpstream: up, clock: clock, configure: func(cfg *config.Config) {
		c.configure(cfg)
		cfg.GCGrace = time.Hour
	}})
	r2 := newEnv(t, envOptions{keepUpstream: up, configure: c.configure})
	fx := r2.aliceBlob("big", 16<<20)
	d := oci.Digest(fx.digest.String())
	ctx := context.Background()

	// Cached through replica 2, then served by it from the bucket to a
	// client that reads slowly.
	readRest(t, getBlob(t, r2.srv.URL, fx), nil, fx)
	r2.settle()
	res := getBlob(t, r2.srv.URL, fx)
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(res.Body, head); err != nil {
		t.Fatalf("read the first bytes from replica 2: %v", err)
	}

	// Meanwhile the group's cache is purged and replica 1 collects.
	if _, err := r1.app.Admin.Purge(ctx, admin.System, "acme"); err != nil {
		t.Fatal(err)
	}
	if gc := collectGarbage(t, r1); gc.Deleted != 0 {
		t.Errorf("replica 1 GC right after the purge = %+v; want nothing deleted (grace period)", gc)
	}
	if _, err := r2.app.Blobs.Stat(ctx, d); err != nil {
		t.Fatalf("the object replica 2 is serving was deleted by replica 1's GC: %v", err)
	}
	readRest(t, res, head, fx)

	// Once unreferenced for longer than the grace period, it goes.
	clock.Add(time.Hour + time.Minute)
	if gc := collectGarbage(t, r1); gc.Deleted != 1 {
		t.Errorf("replica 1 GC after the grace period = %+v; want the unreferenced blob deleted", gc)
	}
	if _, err := r2.app.Blobs.Stat(ctx, d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("the unreferenced blob after the grace period: %v, want deleted", err)
	}
}

// A file referenced again during its grace period is kept: the reference
// clears the record, so the grace period starts over when it goes again.
func TestReplicaGCGraceRestartsAfterANewReference(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	clock := testclock.New(time.Now())
	r1 := newEnv(t, envOptions{keepUpstream: up, clock: clock, configure: func(cfg *config.Config) {
		c.configure(cfg)
		cfg.GCGrace = time.Hour
	}})
	r2 := newEnv(t, envOptions{keepUpstream: up, configure: c.configure})
	fx := r2.aliceBlob("small", 256<<10)
	d := oci.Digest(fx.digest.String())
	ctx := context.Background()

	readRest(t, getBlob(t, r2.srv.URL, fx), nil, fx)
	r2.settle()
	if _, err := r1.app.Admin.Purge(ctx, admin.System, "acme"); err != nil {
		t.Fatal(err)
	}
	if gc := collectGarbage(t, r1); gc.Deleted != 0 {
		t.Fatalf("GC after the purge = %+v; want nothing deleted", gc)
	}
	// Pulled again (a new reference), then purged again just before the
	// first grace period ends.
	clock.Add(50 * time.Minute)
	readRest(t, getBlob(t, r2.srv.URL, fx), nil, fx)
	r2.settle()
	if _, err := r1.app.Admin.Purge(ctx, admin.System, "acme"); err != nil {
		t.Fatal(err)
	}
	clock.Add(20 * time.Minute)
	if gc := collectGarbage(t, r1); gc.Deleted != 0 {
		t.Fatalf("GC 70 minutes after the first purge, 20 after the second = %+v; want nothing deleted", gc)
	}
	if _, err := r2.app.Blobs.Stat(ctx, d); err != nil {
		t.Fatalf("the blob was deleted within the grace period of its last reference: %v", err)
	}
	clock.Add(time.Hour + time.Minute)
	if gc := collectGarbage(t, r1); gc.Deleted != 1 {
		t.Fatalf("GC after the grace period = %+v; want the blob deleted", gc)
	}
}
