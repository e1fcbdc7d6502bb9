package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/metrics"
)

func TestServeMetricsServesOnlyMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	s := New(nil, func(context.Context) error { return nil }, Options{Metrics: m, MetricsElsewhere: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeMetrics(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	for path, want := range map[string]int{"/metrics": 200, "/-/health": 404, "/api/graphql": 404} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s on the metrics address: %d, want %d", path, res.StatusCode, want)
		}
		if path == "/metrics" && !strings.Contains(string(body), "# TYPE") {
			t.Errorf("/metrics body is not Prometheus text: %.100s", body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeMetrics after its context ended: %v", err)
	}
}
