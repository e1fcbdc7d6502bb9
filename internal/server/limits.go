package server

import (
	"io"
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
			r.Body = http.MaxBytesReader(w, &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout}, limit)
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody starts the connection's read deadline at the handler's
// first read of the body, so that the server's own work before it (token
// checks under load) does not count against the client. The deadline is
// the connection's: net/http resets it before reading the next request on
// a kept-alive connection.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	started bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	return b.ReadCloser.Read(p)
}
