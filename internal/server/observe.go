package server

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/server/registry"
)

// observe logs one line per request and records request metrics. The log
// line carries method, path, status, duration, cache result and bytes —
// never a header value or a body (the admin API's bodies carry Docker Hub
// secrets and passwords), so no secret reaches the log.
func observe(next http.Handler, log *slog.Logger, m *metrics.Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			d := time.Since(start)
			rt := routeOf(r.URL.Path)
			m.HTTPRequest(rt, r.Method, rec.status, d.Seconds())
			level := slog.LevelInfo
			if rt == "health" || rt == "metrics" {
				level = slog.LevelDebug
			}
			if !log.Enabled(r.Context(), level) {
				return
			}
			// Typed attributes: no value is boxed on the way to the handler.
			log.LogAttrs(r.Context(), level, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
				slog.Duration("duration", d), slog.String("cache", rec.Header().Get(registry.CacheHeader)),
				slog.Int64("bytes", rec.bytes), slog.String("remote", r.RemoteAddr))
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeOf is a low-cardinality route label for metrics.
func routeOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/v2/") && strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.HasPrefix(path, "/v2/") && strings.Contains(path, "/blobs/"):
		return "blob"
	case strings.HasPrefix(path, "/v2/") && strings.HasSuffix(path, "/tags/list"):
		return "tags"
	case strings.HasPrefix(path, "/v2/") && strings.Contains(path, "/referrers/"):
		return "referrers"
	case path == "/v2/" || path == "/v2":
		return "base"
	case strings.HasPrefix(path, "/v2/"):
		return "v2_other"
	case path == "/jwt/auth":
		return "token"
	case strings.HasPrefix(path, "/-/"):
		return "health"
	case path == "/metrics":
		return "metrics"
	case path == "/api/graphql":
		return "graphql"
	case strings.HasPrefix(path, "/api/v4/"):
		return "api_v4"
	}
	return "other"
}

// recorder captures the status and body size of a response.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status = status
		r.wroteHeader = true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps net/http's own ReadFrom reachable, so a handler copying
// a file to the response may get the kernel's sendfile.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.wroteHeader = true
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
