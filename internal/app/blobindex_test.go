package app_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// A replica remembers the blob references its warm pulls found; a purge
// committed by another replica applies to its very next pull. The blob
// stays stored (another group references it), so only the reference says
// whether the group may be served it without asking the upstream.
func TestReplicaSeesAnotherReplicasPurgeOnTheNextBlobPull(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	rs := c.replicas(t, 2, up)
	r1, r2 := rs[0], rs[1]
	ctx := context.Background()

	r1.group("acme", "beta")
	tok := r1.user("alice", "acme", store.RoleGuest)
	if _, err := r1.app.Admin.SetMember(ctx, admin.System, "beta", "alice", admin.RoleGuest); err != nil {
		t.Fatal(err)
	}
	img := up.PushRandomImage(t, "library/alpine", "v1", 1, 64<<10)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, _ := layers[0].Digest()
	pullAll(t, r1.ref("acme", "alpine:v1"), pullOpts("alice", tok))
	pullAll(t, r1.ref("beta", "alpine:v1"), pullOpts("alice", tok))
	r1.settle()

	repo := "acme/dependency_proxy/containers/alpine"
	jwt := r1.jwt("alice", tok, repo)
	bpath := "/v2/" + repo + "/blobs/" + ld.String()
	upstreamBlobRequests := func() int {
		return up.Count(http.MethodGet, testregistry.KindBlob) + up.Count(http.MethodHead, testregistry.KindBlob)
	}
	pull := func(what string) {
		t.Helper()
		res, body := r1.do(http.MethodGet, bpath, jwt)
		if res.StatusCode != http.StatusOK || digestOf(body) != ld.String() {
			t.Fatalf("%s: %d, %d bytes hashing to %s; want 200 and the layer", what, res.StatusCode, len(body), digestOf(body))
		}
	}
	up.ResetCounts()
	pull("warm pull")
	pull("warm pull again")
	if n := upstreamBlobRequests(); n != 0 {
		t.Fatalf("warm pulls made %d upstream blob requests, want 0", n)
	}

	g, err := r2.app.Store.GroupByPath(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.app.Store.PurgeGroupCache(ctx, g.ID); err != nil {
		t.Fatalf("purge acme through replica 2's store: %v", err)
	}
	pull("pull after replica 2's purge")
	if n := upstreamBlobRequests(); n != 1 {
		t.Errorf("replica 1's pull after replica 2 purged made %d upstream blob requests, want 1 (acme's reference is gone)", n)
	}
	r1.settle()
	up.ResetCounts()
	pull("pull once referenced again")
	if n := upstreamBlobRequests(); n != 0 {
		t.Errorf("replica 1's pull after the reference was made again: %d upstream blob requests, want 0", n)
	}
}
