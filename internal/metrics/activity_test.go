package metrics

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestActivityTotalsAndWindow(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	m := New()
	m.activity = newActivity(clk.now)
	m.activity.SetHubHost("hub.example")

	// Ten minutes ago: two manifest hits and a blob miss.
	clk.t = clk.t.Add(-10 * time.Minute)
	m.CacheResult("manifest", ResultHit)
	m.CacheResult("manifest", ResultHit)
	m.CacheResult("blob", ResultMiss)
	m.BytesServed(SourceUpstream, 1000)
	m.UpstreamRequest("GET", "blob", 200)
	// Now: a stale manifest, a blob hit, bytes from cache, a rate limit of
	// Docker Hub and one of another upstream (not Docker Hub's).
	clk.t = clk.t.Add(10 * time.Minute)
	m.StaleServed("manifest", "upstream_error")
	m.CacheResult("blob", ResultHit)
	m.BytesServed(SourceCache, 3000)
	m.RateLimit("hub.example", "anonymous", 100, 42)
	m.RateLimit("hub.example", "alice", 200, 150)
	m.RateLimit("other.example", "anonymous", 100, 1)

	all, recent := m.Activity().Since(5 * time.Minute)
	want := Totals{Hits: 3, Misses: 1, Stale: 1, Saved: 3, BytesCache: 3000, BytesUpstream: 1000, UpstreamRequests: 1}
	if all != want {
		t.Errorf("since start = %+v, want %+v", all, want)
	}
	wantRecent := Totals{Hits: 1, Stale: 1, Saved: 1, BytesCache: 3000}
	if recent != wantRecent {
		t.Errorf("last 5 minutes = %+v, want %+v", recent, wantRecent)
	}

	s := m.Activity().Series(15*time.Minute, 15)
	if len(s) != 15 {
		t.Fatalf("series has %d buckets, want 15", len(s))
	}
	if s[4].Requests() != 3 || s[4].BytesUpstream != 1000 || s[4].HubRemaining != -1 {
		t.Errorf("bucket of 10 minutes ago = %+v, want 3 requests, 1000 bytes from upstream, no rate limit", s[4])
	}
	if last := s[14]; last.Requests() != 2 || last.HubRemaining != 42 {
		t.Errorf("last bucket = %+v, want 2 requests and Docker Hub remaining 42", last)
	}
	if s[0].Unix != clk.t.Unix()-15*60+1 {
		t.Errorf("first bucket starts at %d, want %d", s[0].Unix, clk.t.Unix()-15*60+1)
	}

	// An hour later the old seconds have left the ring, the totals stay.
	clk.t = clk.t.Add(time.Hour)
	all, recent = m.Activity().Since(time.Hour)
	if all != want || recent != (Totals{}) {
		t.Errorf("an hour later: since start %+v, last hour %+v; want %+v and nothing", all, recent, want)
	}
	for _, b := range m.Activity().Series(time.Hour, 60) {
		if b.Requests() != 0 || b.HubRemaining != -1 {
			t.Fatalf("an hour later a bucket still counts %+v", b)
		}
	}
}

func TestRecentPullsBoundedNewestFirst(t *testing.T) {
	a := newActivity(time.Now)
	for i := range RecentPullsKept + 20 {
		a.Pull(Pull{Image: fmt.Sprintf("img%d", i), GroupID: int64(i % 2), Client: netip.MustParseAddr("127.0.0.1")})
	}
	all := a.RecentPulls(0, 0, nil)
	if len(all) != RecentPullsKept {
		t.Fatalf("kept %d pulls, want %d", len(all), RecentPullsKept)
	}
	if all[0].Image != fmt.Sprintf("img%d", RecentPullsKept+19) || all[len(all)-1].Image != "img20" {
		t.Errorf("pulls run from %s to %s, want newest img%d first and img20 last", all[0].Image, all[len(all)-1].Image, RecentPullsKept+19)
	}
	odd := a.RecentPulls(3, 0, func(p Pull) bool { return p.GroupID == 1 })
	if len(odd) != 3 || odd[0].Image != fmt.Sprintf("img%d", RecentPullsKept+19) || odd[2].Image != fmt.Sprintf("img%d", RecentPullsKept+15) {
		t.Errorf("3 newest pulls of group 1 = %v", odd)
	}
	// After a Seq: only the newer pulls, newest first.
	last := all[0].Seq
	if all[0].Seq != RecentPullsKept+20 || all[1].Seq != last-1 {
		t.Errorf("pulls numbered %d, %d; want %d, %d", all[0].Seq, all[1].Seq, RecentPullsKept+20, RecentPullsKept+19)
	}
	if got := a.RecentPulls(0, last, nil); len(got) != 0 {
		t.Errorf("after the last pull: %d pulls, want none", len(got))
	}
	a.Pull(Pull{Image: "new1"})
	a.Pull(Pull{Image: "new2"})
	if got := a.RecentPulls(0, last, nil); len(got) != 2 || got[0].Image != "new2" || got[1].Image != "new1" {
		t.Errorf("after %d: %v, want new2 and new1", last, got)
	}
	if got := a.RecentPulls(0, 1, nil); len(got) != RecentPullsKept {
		t.Errorf("after a pull no longer kept: %d pulls, want the %d kept", len(got), RecentPullsKept)
	}
}

func BenchmarkActivityHotPath(b *testing.B) {
	m := New()
	p := Pull{Result: ResultHit, Kind: "blob", Image: "library/alpine", Reference: "sha256:x", Group: "acme", GroupID: 1}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.activity.result("blob", ResultHit)
			m.activity.count(Totals{BytesCache: 100})
			m.Pull(p)
		}
	})
}
