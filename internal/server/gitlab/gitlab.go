// Package gitlab serves the subset of GitLab's REST API under /api/v4 that
// dproxy implements, with GitLab's paths, status codes, JSON field names,
// pagination headers and {"message": …} errors, so that GitLab's scripts
// and clients work against dproxy:
//
//	DELETE /api/v4/groups/:id/dependency_proxy/cache → 202
//	/api/v4/groups/:id/-/virtual_registries/container/{registries,upstreams}
//	/api/v4/virtual_registries/container/{registries,upstreams,registry_upstreams,cache_entries}/…
//
// (the container virtual registries API: virtual.go lists its endpoints).
//
// Handlers are thin: they decode the request, call one operation of
// internal/admin, which holds every rule, and encode its answer. Each is a
// method returning an error; one adapter (route) signs the caller in,
// turns the error into GitLab's answer and logs internal failures once.
//
// It must not import store, upstream, server, commands or tui.
package gitlab

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/dproxy/dproxy/internal/admin"
)

// Options configure a Handler.
type Options struct {
	// ExternalURL is the URL clients reach dproxy at; pagination links
	// start with it (default: the request's host over http).
	ExternalURL string
	Logger      *slog.Logger
}

// Handler serves /api/v4/.
type Handler struct {
	svc  *admin.Service
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	// methods lists the methods each routed path answers, for 405s.
	methods map[string][]string
}

// handlerFunc is an endpoint: it answers the signed-in actor's request,
// or returns the error route turns into GitLab's answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request, a admin.Actor) error

// New returns the handler of /api/v4/ over the admin service.
func New(svc *admin.Service, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{svc: svc, opts: opts, log: opts.Logger, mux: http.NewServeMux(), methods: map[string][]string{}}
	h.route("DELETE /api/v4/groups/{id}/dependency_proxy/cache", "Group", h.purgeCache)
	h.routeVirtualRegistries()
	for path, methods := range h.methods {
		allow := strings.Join(methods, ", ")
		h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeMessage(w, http.StatusMethodNotAllowed, "405 Method Not Allowed: "+r.URL.Path+" answers "+allow)
		})
	}
	h.mux.HandleFunc("/api/v4/", func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusNotFound, "404 Not Found: dproxy serves GitLab's dependency proxy purge and container virtual registry endpoints under /api/v4, and no other")
	})
	return h
}

// ServeHTTP serves /api/v4/.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// route registers an endpoint behind sign-in. pattern is "METHOD path".
// resource names what a 404 did not find, in GitLab's words ("Group" gives
// "404 Group Not Found"); "" lets the admin service's message say which of
// several objects it was. Every request takes the same tokens as the
// GraphQL API: Authorization: Bearer, or GitLab's PRIVATE-TOKEN header,
// with the api scope.
func (h *Handler) route(pattern, resource string, fn handlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	h.methods[path] = append(h.methods[path], method)
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		ctx := admin.WithRequestScope(r.Context())
		r = r.WithContext(ctx)
		a, err := h.svc.Authenticate(ctx, r.Header.Get("Authorization"), r.Header.Get("PRIVATE-TOKEN"))
		if err == nil {
			err = fn(w, r, a)
		}
		if err != nil {
			h.writeError(ctx, w, r, resource, err)
		}
	})
}

// groupPath resolves GitLab's :id of a group, its number or its full path
// (URL-encoded in the request), to the full path of a group the actor may
// read.
func (h *Handler) groupPath(ctx context.Context, a admin.Actor, id string) (string, error) {
	n, ok := number(id)
	if !ok {
		return id, nil
	}
	g, err := h.svc.GroupByID(ctx, a, n)
	if err != nil {
		return "", err
	}
	return g.Path, nil
}
