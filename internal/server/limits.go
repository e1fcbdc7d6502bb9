package server

import (
	"net/http"
	"strings"
	"time"
)

// Body limits of the endpoints that read a request body before they can
// authorise it. Blob and manifest streaming is not touched by them.
const (
	// DefaultBodyReadTimeout bounds how long reading such a body may take.
	DefaultBodyReadTimeout = 30 * time.Second
	// maxTokenForm bounds a token request's form.
	maxTokenForm = 64 << 10
	// maxAdminBody bounds an admin API request body (GraphQL answers 413
	// past it).
	maxAdminBody = 1 << 20
)

// limitBodies puts a read deadline and a size cap on the bodies of the
// token endpoint and the admin API, so that slow or huge uploads cannot
// hold connections and memory without end.
func limitBodies(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var limit int64
		switch p := r.URL.Path; {
		case p == "/jwt/auth":
			limit = maxTokenForm
		case p == "/api/graphql", strings.HasPrefix(p, "/api/v4/"):
			limit = maxAdminBody
		}
		if limit > 0 && r.Body != nil && r.Body != http.NoBody {
			// The deadline is the connection's: net/http resets it before
			// reading the next request on a kept-alive connection.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(w, r)
	})
}
