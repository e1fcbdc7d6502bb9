package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// activityQuery is what one refresh of `dproxy tui --activity` asks, in
// one request (adminclient.ActivitySnapshot).
const activityQuery = `query($first: Int, $after: BigInt) {
  cacheActivity { startedAt
    sinceStart { requests hits misses stale upstreamPullsSaved bytesFromCache bytesFromUpstream upstreamRequests hitRatio byteHitRatio }
    last5Minutes { requests hits misses stale upstreamPullsSaved bytesFromCache bytesFromUpstream upstreamRequests hitRatio byteHitRatio } }
  upstreamRateLimits { upstream credential limit remaining windowSeconds source seenAt }
  activeDownloads { digest image groupPaths virtualRegistry virtualRegistryGroup bytes totalBytes clients startedAt }
  recentPulls(first: $first, after: $after) { seq at result kind image reference groupPath virtualRegistry virtualRegistryGroup client principal }
}`

// BenchmarkActivityRefresh is one refresh of the activity screen through
// the whole handler, as a guest, with the 500 pulls the server keeps:
// "idle" when no pull came since the last refresh (what a screen pays most
// of the time), "300-new" when 300 did (a busy server: the screen's whole
// list is new). Set beside BenchmarkWarmManifest, it says what a screen
// refreshing twice a second costs against the pulls it watches.
func BenchmarkActivityRefresh(b *testing.B) {
	e, acme, _, _ := hotPathEnv(b)
	h := e.app.Server.Handler()
	for range 500 {
		serveDirect(b, h, "/v2/acme/dependency_proxy/containers/node/manifests/v1", acme)
	}
	tok := e.user("watcher", "acme", store.RoleGuest, auth.ScopeAPI)
	refresh := func(b *testing.B, after string) []string {
		body, _ := json.Marshal(map[string]any{"query": activityQuery, "variables": map[string]any{"first": 300, "after": after}})
		req := httptest.NewRequest(http.MethodPost, "/api/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out struct {
			Data struct {
				RecentPulls []struct{ Seq string } `json:"recentPulls"`
			} `json:"data"`
			Errors []any `json:"errors"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || len(out.Errors) > 0 {
			b.Fatalf("refresh: %d %s", rec.Code, rec.Body.String())
		}
		seqs := make([]string, len(out.Data.RecentPulls))
		for i, p := range out.Data.RecentPulls {
			seqs[i] = p.Seq
		}
		return seqs
	}
	all := refresh(b, "0")
	if len(all) != 300 {
		b.Fatalf("a first refresh: %d pulls, want 300", len(all))
	}
	newest := all[0]
	if n := refresh(b, newest); len(n) != 0 {
		b.Fatalf("after the newest pull: %d pulls", len(n))
	}
	for _, bc := range []struct{ name, after string }{{"idle", newest}, {"300-new", "0"}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				refresh(b, bc.after)
			}
		})
	}
}
