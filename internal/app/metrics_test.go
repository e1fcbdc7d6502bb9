package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsCountCacheAndUpstream pulls a blob cold, then warm, then with
// the upstream down, and checks /metrics tells each story.
func TestMetricsCountCacheAndUpstream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.aliceBlob("metered", 64<<10)
	manifest := "/v2/acme/dependency_proxy/containers/metered/manifests/v1"

	var manifestSize int64
	for range 2 {
		if res, _ := e.do(http.MethodGet, b.path, b.jwt); res.StatusCode != 200 {
			t.Fatalf("blob GET: %d", res.StatusCode)
		}
		res, body := e.do(http.MethodGet, manifest, b.jwt)
		if res.StatusCode != 200 {
			t.Fatalf("manifest GET: %d", res.StatusCode)
		}
		manifestSize = int64(len(body))
	}
	e.up.SetDown(true)
	if res, _ := e.do(http.MethodGet, manifest, b.jwt); res.StatusCode != 200 {
		t.Fatalf("manifest GET with the upstream down: %d", res.StatusCode)
	}

	exp := metricsText(t, e)
	for _, want := range []string{
		`dproxy_cache_results_total{kind="blob",result="miss"} 1`,
		`dproxy_cache_results_total{kind="blob",result="hit"} 1`,
		`dproxy_cache_results_total{kind="manifest",result="miss"} 1`,
		`dproxy_cache_results_total{kind="manifest",result="stale"} 1`,
		`dproxy_upstream_requests_total{kind="blob",method="GET",status="200"} 1`,
		`dproxy_upstream_requests_total{kind="manifest",method="HEAD",status="200"} 1`,
		// From the cache: the blob once, the manifest twice (revalidated, stale).
		fmt.Sprintf(`dproxy_served_bytes_total{source="cache"} %d`, b.size+2*manifestSize),
		fmt.Sprintf(`dproxy_served_bytes_total{source="upstream"} %d`, b.size+manifestSize),
		`dproxy_inflight_downloads 0`,
		`dproxy_http_requests_total{method="GET",route="blob",status="200"} 2`,
	} {
		if !strings.Contains(exp, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if n := testutil.CollectAndCount(e.app.Metrics.Registry(), "dproxy_stale_served_total"); n != 1 {
		t.Errorf("dproxy_stale_served_total has %d series, want 1", n)
	}
}
