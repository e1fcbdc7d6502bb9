package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	dcluster "github.com/dproxy/dproxy/internal/cluster"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
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

// peerReplicas starts n replicas of c, each with its own address as its
// peer URL and a fetch lease of lease.
func peerReplicas(t *testing.T, c cluster, n int, up *testregistry.Upstream, lease time.Duration) []*env {
	t.Helper()
	out := make([]*env, n)
	for i := range out {
		out[i] = newEnv(t, envOptions{keepUpstream: up, configure: func(cfg *config.Config) {
			c.configure(cfg)
			cfg.PeerURL = "http://" + cfg.Addr
			cfg.FetchLeaseTimeout = lease
		}})
	}
	return out
}

// Ten cold clients split over two replicas with peer URLs pulling one
// 50 MiB layer: the upstream sees exactly one GET of it, and every client
// receives bytes while that download is still running.
func TestReplicasFetchABlobOnceAndStreamFromTheLeader(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	rs := peerReplicas(t, c, 2, up, 30*time.Second)
	const size = 50 << 20
	fx := rs[0].aliceBlob("big", size)
	// The download stops at 8 MiB until every client has its first MiB.
	hold := up.HoldBlob(fx.digest.String(), 8<<20)

	const clients = 10
	type result struct {
		i   int
		err error
	}
	started := make(chan int, clients)
	done := make(chan result, clients)
	for i := range clients {
		e := rs[i%2]
		go func() {
			err := func() error {
				req, _ := http.NewRequest(http.MethodGet, e.srv.URL+fx.path, nil)
				req.Header.Set("Authorization", "Bearer "+fx.jwt)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				defer res.Body.Close()
				if res.StatusCode != http.StatusOK {
					return errors.New(res.Status)
				}
				head := make([]byte, 1<<20)
				if _, err := io.ReadFull(res.Body, head); err != nil {
					return err
				}
				started <- i
				rest, err := io.ReadAll(res.Body)
				if err != nil {
					return err
				}
				if got := digestOf(append(head, rest...)); got != fx.digest.String() {
					return errors.New("got " + got + ", " + itoa(len(head)+len(rest)) + " bytes")
				}
				return nil
			}()
			done <- result{i, err}
		}()
	}
	// Every client streams while the upstream body is held: none waits for
	// the whole download.
	for range clients {
		select {
		case <-started:
		case r := <-done:
			t.Fatalf("client %d (replica %d) ended before the download did: %v", r.i, r.i%2+1, r.err)
		case <-time.After(2 * time.Minute):
			t.Fatal("gave up waiting for every client to receive its first MiB while the download runs")
		}
	}
	if n := up.CountBlob(http.MethodGet, fx.digest.String()); n != 1 {
		t.Errorf("while the download runs the upstream saw %d GETs of the blob, want 1", n)
	}
	hold.Release()
	for range clients {
		if r := <-done; r.err != nil {
			t.Errorf("client %d (replica %d): %v", r.i, r.i%2+1, r.err)
		}
	}
	if n := up.CountBlob(http.MethodGet, fx.digest.String()); n != 1 {
		t.Errorf("the upstream saw %d GETs of the blob, want exactly 1 for the cluster", n)
	}
	waitFor(t, "the blob to be committed", func() bool { return !rs[0].downloading() && !rs[1].downloading() })
	if err := rs[1].app.Blobs.Verify(context.Background(), oci.Digest(fx.digest.String())); err != nil {
		t.Errorf("the blob in the bucket: %v", err)
	}
	// Both replicas recorded the group's reference.
	g, err := rs[1].app.Store.GroupByPath(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs[1].app.Store.Blob(context.Background(), g.ID, oci.Digest(fx.digest.String())); err != nil {
		t.Errorf("the group's reference: %v", err)
	}
}

// The replica leading a download stops mid-way: the replica streaming from
// it takes the lease over and finishes the download from the upstream,
// and its client gets the whole verified blob.
func TestReplicaTakesOverTheDownloadOfAStoppedLeader(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	rs := peerReplicas(t, c, 2, up, 30*time.Second)
	r1, r2 := rs[0], rs[1]
	fx := r1.aliceBlob("big", 16<<20)
	hold := up.HoldBlob(fx.digest.String(), 4<<20)

	resA := getBlob(t, r1.srv.URL, fx) // replica 1 leads
	<-hold.Reached()
	resB := getBlob(t, r2.srv.URL, fx) // replica 2 streams from replica 1
	headB := make([]byte, 1<<20)
	if _, err := io.ReadFull(resB.Body, headB); err != nil {
		t.Fatalf("read the first MiB from replica 2: %v", err)
	}
	if n := up.CountBlob(http.MethodGet, fx.digest.String()); n != 1 {
		t.Fatalf("the upstream saw %d GETs of the blob while replica 1 led, want 1", n)
	}

	// Stopping replica 1 ends its download and its lease.
	resA.Body.Close()
	r1.close()
	hold.Release()
	readRest(t, resB, headB, fx)
	if n := up.CountBlob(http.MethodGet, fx.digest.String()); n != 2 {
		t.Errorf("the upstream saw %d GETs of the blob, want 2 (replica 1's, then replica 2's)", n)
	}
	waitFor(t, "replica 2's download to be committed", func() bool { return !r2.downloading() })
	if err := r2.app.Blobs.Verify(context.Background(), oci.Digest(fx.digest.String())); err != nil {
		t.Errorf("the blob replica 2 stored: %v", err)
	}
}

// A leader killed without releasing its lease (a real `dproxy serve`
// process, SIGKILL) loses it when it expires: the waiting replica (no
// peer URL in this cluster: it waits for the stored blob) then fetches the
// blob itself.
func TestReplicaTakesOverAnExpiredLease(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	r2 := newEnv(t, envOptions{keepUpstream: up, configure: func(cfg *config.Config) {
		c.configure(cfg)
		cfg.FetchLeaseTimeout = 2 * time.Second
	}})
	fx := r2.aliceBlob("big", 4<<20)
	d := oci.Digest(fx.digest.String())
	hold := up.HoldBlob(fx.digest.String(), 1<<20)

	cmd, base, _ := serveProcessLog(t, t.TempDir(), up.URL, append(c.environ(), "DPROXY_FETCH_LEASE_TIMEOUT=2s")...)
	resA := getBlob(t, base, fx) // replica 1 takes the lease
	<-hold.Reached()
	// Replica 2 misses too, and waits: replica 1 holds the lease.
	type result struct {
		res *http.Response
		err error
	}
	second := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, r2.srv.URL+fx.path, nil)
		req.Header.Set("Authorization", "Bearer "+fx.jwt)
		res, err := http.DefaultClient.Do(req)
		second <- result{res, err}
	}()
	waitFor(t, "replica 2 to start its download", r2.downloading)
	if n := up.CountBlob(http.MethodGet, fx.digest.String()); n != 1 {
		t.Fatalf("the upstream saw %d GETs of the blob while replica 1 held the lease, want 1", n)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	resA.Body.Close()
	hold.Release()
	var r result
	select {
	case r = <-second:
	case <-time.After(2 * time.Minute):
		t.Fatal("gave up waiting for replica 2 to take the download over")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res.StatusCode != http.StatusOK {
		t.Fatalf("replica 2: %s", r.res.Status)
	}
	readRest(t, r.res, nil, fx)
	if n := up.CountBlob(http.MethodGet, fx.digest.String()); n != 2 {
		t.Errorf("the upstream saw %d GETs of the blob, want 2 (the killed leader's, then replica 2's)", n)
	}
	waitFor(t, "replica 2's download to be committed", func() bool { return !r2.downloading() })
	if err := r2.app.Blobs.Verify(context.Background(), d); err != nil {
		t.Errorf("the blob replica 2 stored: %v", err)
	}
}

// The peer endpoint serves only requests signed with the cluster's key,
// only valid digests, and only blobs downloading or stored here.
func TestPeerEndpointRefusesUnsignedRequests(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	r1 := peerReplicas(t, c, 1, up, 30*time.Second)[0]
	fx := r1.aliceBlob("small", 64<<10)
	readRest(t, getBlob(t, r1.srv.URL, fx), nil, fx)
	r1.settle()
	d := oci.Digest(fx.digest.String())
	path := r1.srv.URL + dcluster.Path + string(d)

	get := func(url string, hdr ...string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	// A key derived from another secret key, and the right key's signature
	// of another digest, are refused like no signature at all.
	other, err := dcluster.New(r1.app.Store, bytes.Repeat([]byte{7}, 32), dcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.FetchPeer(context.Background(), r1.srv.URL, d, 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a peer request signed with another key: %v, want 401", err)
	}
	for name, hdr := range map[string][]string{
		"no signature":    nil,
		"bearer token":    {"Authorization", "Bearer " + r1.adminToken()},
		"empty signature": {"Authorization", "Dproxy-Peer "},
		"garbage":         {"Authorization", "Dproxy-Peer " + strings.Repeat("0", 64)},
	} {
		if code, body := get(path, hdr...); code != http.StatusUnauthorized {
			t.Errorf("%s: %d with %d bytes, want 401", name, code, len(body))
		}
	}
	// Signed with the cluster's key, it serves the stored blob, from an
	// offset too.
	self, err := dcluster.New(r1.app.Store, peerKeyOf(t, c), dcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	body, size, err := self.FetchPeer(context.Background(), r1.srv.URL, d, 1000)
	if err != nil {
		t.Fatalf("a signed peer request: %v", err)
	}
	rest, _ := io.ReadAll(body)
	body.Close()
	if size != fx.size || int64(len(rest)) != fx.size-1000 {
		t.Errorf("signed peer request from 1000: size %d, %d bytes; want %d and %d", size, len(rest), fx.size, fx.size-1000)
	}
	// Nothing but a blob here: an unknown digest is 404, a bad one 400.
	if _, _, err := self.FetchPeer(context.Background(), r1.srv.URL, oci.Digest("sha256:"+strings.Repeat("ab", 32)), 0); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a signed request for a blob not here: %v, want 404", err)
	}
	if code, _ := get(r1.srv.URL+dcluster.Path+"sha256:..%2f..%2fetc", "Authorization", "Dproxy-Peer x"); code != http.StatusBadRequest {
		t.Errorf("an invalid digest: %d, want 400", code)
	}
}

// peerKeyOf derives c's peer key as every replica does.
func peerKeyOf(t *testing.T, c cluster) []byte {
	t.Helper()
	key, err := secretbox.ParseKey(c.secretKey)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return box.Derive(dcluster.KeyPurpose)
}
