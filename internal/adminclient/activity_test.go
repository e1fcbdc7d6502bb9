package adminclient_test

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/testserver"
)

// The activity queries against the real server: the recent pulls, the
// counts and the downloads in progress, each scoped to what the caller
// may read (a guest of acme sees acme's only, an admin everything).
func TestActivityContract(t *testing.T) {
	t.Parallel()
	s := testserver.New(t, testserver.Options{})
	ctx := context.Background()
	admin := newClient(t, s.URL, s.AdminToken)
	for _, g := range []string{"acme", "zeta"} {
		if _, err := admin.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CreateUser(ctx, adminclient.UserInput{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddMember(ctx, "acme", "alice", "GUEST"); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, adminclient.TokenInput{Kind: adminclient.TokenPersonal, Name: "api", Username: "alice", Scopes: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	alice := newClient(t, s.URL, tok.Secret)

	s.Upstream.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	img := s.Upstream.PushRandomImage(t, "library/big", "latest", 1, 256<<10)
	pull(t, s, "acme", "alpine:latest", "admin", s.AdminToken)
	pull(t, s, "zeta", "alpine:latest", "admin", s.AdminToken)
	pull(t, s, "zeta", "alpine:latest", "admin", s.AdminToken) // from the cache

	all, err := admin.RecentPulls(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]int{}
	for _, p := range all {
		groups[*p.GroupPath]++
		if p.Image != "library/alpine" || p.Principal != "admin" || p.Client != "127.0.0.1" {
			t.Errorf("recent pull %+v: want library/alpine by admin from 127.0.0.1", p)
		}
	}
	// Each pull: the manifest and the layer.
	if groups["acme"] != 2 || groups["zeta"] != 4 {
		t.Errorf("the admin sees recent pulls by group %v, want acme 2 and zeta 4", groups)
	}
	if all[0].GroupPath == nil || *all[0].GroupPath != "zeta" || all[0].Result != "hit" {
		t.Errorf("newest pull %+v, want zeta's hit", all[0])
	}
	two, err := admin.RecentPulls(ctx, 2, 0)
	if err != nil || len(two) != 2 {
		t.Errorf("RecentPulls(2) = %d pulls, %v", len(two), err)
	}
	if after, err := admin.RecentPulls(ctx, 0, all[2].Seq); err != nil || len(after) != 2 || after[0].Seq != all[0].Seq || after[1].Seq != all[1].Seq {
		t.Errorf("RecentPulls after seq %d = %+v, %v; want the 2 newer", all[2].Seq, after, err)
	}
	if after, err := admin.RecentPulls(ctx, 0, all[0].Seq); err != nil || len(after) != 0 {
		t.Errorf("RecentPulls after the newest = %+v, %v; want none", after, err)
	}
	mine, err := alice.RecentPulls(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 2 || slices.ContainsFunc(mine, func(p adminclient.RecentPull) bool { return *p.GroupPath != "acme" }) {
		t.Errorf("a guest of acme sees %+v, want acme's 2 pulls only", mine)
	}

	act, err := alice.CacheActivity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := alice.ActivitySnapshot(ctx, 300, 0)
	if err != nil || snap.Stats.SinceStart.Requests != 6 || len(snap.Pulls) != 2 || snap.Downloads == nil {
		t.Errorf("ActivitySnapshot = %+v, %v; want the counts and acme's 2 pulls", snap, err)
	}
	dash, err := admin.DashboardSnapshot(ctx, 20)
	if err != nil || len(dash.Last15) != 20 || len(dash.Last60) != 20 || dash.Stats.SinceStart.Requests != 6 {
		t.Errorf("DashboardSnapshot(20) = %+v, %v; want 20 buckets a window", dash, err)
	}
	series, err := admin.ActivitySeries(ctx, 15, 30)
	if err != nil || len(series) != 30 {
		t.Fatalf("ActivitySeries(15, 30) = %d buckets, %v", len(series), err)
	}
	if last := series[29].Totals; last.Requests == 0 {
		t.Errorf("the last bucket counts no requests: %+v", series[29])
	}
	if _, err := admin.ActivitySeries(ctx, 61, 30); err == nil {
		t.Error("a series of 61 minutes was accepted")
	}

	// acme: both missed; zeta: the manifest missed, the layer stored for
	// acme was shared after an upstream HEAD; then both hit.
	if s5 := act.Last5Minutes; s5.Requests != 6 || s5.Hits != 3 || s5.Misses != 3 || s5.UpstreamPullsSaved != 1 ||
		s5.HitRatio == nil || *s5.HitRatio != 0.5 || s5.BytesFromCache == 0 || s5.BytesFromUpstream == 0 {
		t.Errorf("last 5 minutes = %+v; want 6 requests, 3 hits, 3 misses, 1 pull saved, bytes both ways", s5)
	}
	if act.SinceStart.Requests != 6 || act.StartedAt.IsZero() {
		t.Errorf("since start = %+v from %s", act.SinceStart, act.StartedAt)
	}

	// A download held half way: the admin and acme's guest see it with
	// its progress and its two clients; nobody sees one of zeta's.
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	lsize, _ := layers[0].Size()
	hold := s.Upstream.HoldBlob(ld.String(), 128<<10)
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- fetchBlob(s, "acme", "big", ld.String()) }()
	}
	<-hold.Reached()
	var dl adminclient.ActiveDownload
	waitFor(t, "two clients on the held download", func() bool {
		ds, err := alice.ActiveDownloads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].Clients == 2 && ds[0].Bytes == 128<<10 {
			dl = ds[0]
			return true
		}
		return false
	})
	if dl.Digest != ld.String() || dl.Image != "library/big" || !slices.Equal(dl.GroupPaths, []string{"acme"}) ||
		dl.TotalBytes == nil || int64(*dl.TotalBytes) != lsize {
		t.Errorf("the guest sees %+v; want %s of library/big for acme, 128 KiB of %d bytes", dl, ld, lsize)
	}
	if ds, err := admin.ActiveDownloads(ctx); err != nil || len(ds) != 1 {
		t.Errorf("the admin sees downloads %+v, %v; want the one", ds, err)
	}
	if _, err := admin.AddMember(ctx, "acme", "alice", "MINIMAL_ACCESS"); err != nil {
		t.Fatal(err)
	}
	if ds, err := alice.ActiveDownloads(ctx); err != nil || len(ds) != 0 {
		t.Errorf("below guest alice sees downloads %+v, %v; want none", ds, err)
	}
	hold.Release()
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	s.WaitDownloads(t)
	if ds, err := admin.ActiveDownloads(ctx); err != nil || len(ds) != 0 {
		t.Errorf("after the download: %+v, %v; want none", ds, err)
	}
}

// fetchBlob reads blob d of image in group through the proxy as admin.
func fetchBlob(s *testserver.Server, group, image, d string) error {
	ref, err := name.NewDigest(s.Host+"/"+group+"/dependency_proxy/containers/"+image+"@"+d, name.Insecure)
	if err != nil {
		return err
	}
	l, err := remote.Layer(ref, remote.WithAuth(&authn.Basic{Username: "admin", Password: s.AdminToken}))
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// waitFor asks ok again until it holds; it fails t after a generous bound
// only to end a run that hangs.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
