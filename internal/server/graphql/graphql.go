// Package graphql owns dproxy's admin GraphQL API (POST /api/graphql,
// schema in schema/, gqlgen code in generated/). Resolvers are thin: they
// decode the request, call one operation of internal/admin, which holds
// every rule, and encode its answer; admin refusals become the payload's
// errors or the top-level errors as GitLab's API does.
//
// It must not import store, upstream, server, commands or tui. Request
// bodies (which carry Docker Hub secrets and passwords) are never logged,
// and no response ever carries a stored secret.
package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	gql "github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
)

// Limits of a request.
const (
	// MaxPageSize is the largest `first` a connection accepts.
	MaxPageSize = 100
	// DefaultPageSize is the page size when `first` is not given.
	DefaultPageSize = 20
	// MaxComplexity bounds the cost of one operation: every field costs 1
	// and a connection multiplies its nodes' cost by `first`.
	MaxComplexity = 5000
	// MaxDepth bounds how deeply selections nest.
	MaxDepth = 12
	// maxBody bounds a request body.
	maxBody = 1 << 20
)

// Options configure a Handler.
type Options struct {
	// ExternalURL is the URL clients reach dproxy at; its host[:port]
	// starts the image prefixes.
	ExternalURL string
	Logger      *slog.Logger
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (admin.ClientAddr), for throttling checks of a current password.
	TrustedProxies []netip.Prefix
}

// Handler serves the admin API.
type Handler struct {
	svc  *admin.Service
	opts Options
	log  *slog.Logger
	host string
	gql  http.Handler
}

// New returns the admin API handler over the admin service.
func New(svc *admin.Service, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{svc: svc, opts: opts, log: opts.Logger}
	if u, err := url.Parse(opts.ExternalURL); err == nil && u.Host != "" {
		h.host = u.Host
	} else {
		h.host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(opts.ExternalURL, "https://"), "http://"), "/")
	}

	cfg := generated.Config{Resolvers: &resolver{h}}
	setComplexity(&cfg.Complexity)
	srv := handler.New(generated.NewExecutableSchema(cfg))
	srv.AddTransport(transport.POST{})
	srv.Use(extension.Introspection{}) // only authenticated callers get this far
	srv.Use(depthLimit{max: MaxDepth})
	srv.Use(extension.FixedComplexityLimit(MaxComplexity))
	srv.SetErrorPresenter(h.presentError)
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		h.log.ErrorContext(ctx, "admin API resolver panicked", "panic", v)
		return errors.New("internal error")
	})
	h.gql = srv
	return h
}

// GraphQL returns the handler of POST /api/graphql. Requests need a Bearer
// (or PRIVATE-TOKEN) token with the api scope; others get 401 and a JSON
// GraphQL error body.
func (h *Handler) GraphQL() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := h.svc.Authenticate(r.Context(), r.Header.Get("Authorization"), r.Header.Get("PRIVATE-TOKEN"))
		if err != nil {
			status := http.StatusUnauthorized
			if _, ok := publicMessage(err); !ok {
				h.log.ErrorContext(r.Context(), "admin API sign-in failed", "err", err)
				status = http.StatusInternalServerError
				err = errors.New("internal error while checking the token")
			}
			h.writeGraphQLError(w, status, err)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				h.writeGraphQLError(w, http.StatusRequestEntityTooLarge, fail(fmt.Sprintf("the request body is larger than %d bytes; send smaller operations", maxBody)))
				return
			}
			h.writeGraphQLError(w, http.StatusBadRequest, fail("read the request body: "+err.Error()))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		ctx := withUpstreamBudget(withPrincipal(admin.WithRequestScope(r.Context()), p))
		ctx = context.WithValue(ctx, clientKey{}, admin.ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), h.opts.TrustedProxies))
		h.gql.ServeHTTP(w, r.WithContext(ctx))
	})
}

// writeGraphQLError answers with a GraphQL error body and status.
func (h *Handler) writeGraphQLError(w http.ResponseWriter, status int, err error) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dproxy admin API"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]string{{"message": publicText(err)}},
		"data":   nil,
	})
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p admin.Actor) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

type clientKey struct{}

// clientAddr returns the address of the client behind a request.
func clientAddr(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(clientKey{}).(netip.Addr)
	return a
}

// principal returns the signed-in principal of a request. The handler
// never runs a resolver without one.
func principal(ctx context.Context) admin.Actor {
	p, _ := ctx.Value(principalKey{}).(admin.Actor)
	return p
}

// publicError is an error whose message is written for the caller.
type publicError struct{ msg string }

func (e *publicError) Error() string { return e.msg }

// fail returns an error the caller sees as is.
func fail(msg string) error { return &publicError{msg: msg} }

// publicMessage returns the message of an error meant for the caller (the
// admin service's refusals and this package's own), and false for anything
// else (a database failure, a bug).
func publicMessage(err error) (string, bool) {
	var pe *publicError
	if errors.As(err, &pe) {
		return pe.msg, true
	}
	return admin.Message(err)
}

// refusal returns the payload errors of an admin refusal (admin.IsRefusal):
// a mutation answers those in its payload and everything else in the
// top-level errors.
func refusal(err error) ([]string, bool) {
	if !admin.IsRefusal(err) {
		return nil, false
	}
	msg, _ := admin.Message(err)
	return []string{msg}, true
}

// publicText is publicMessage, or a generic text for internal errors.
func publicText(err error) string {
	if msg, ok := publicMessage(err); ok {
		return msg
	}
	return "internal error; the server log has the details"
}

// presentError turns a resolver error into a GraphQL error. Messages
// written for the caller pass; gqlgen's own (input coercion) pass; any
// other error is logged and answered with a generic message, so no SQL,
// path or stack ever reaches a client.
func (h *Handler) presentError(ctx context.Context, err error) *gqlerror.Error {
	e := gql.DefaultErrorPresenter(ctx, err)
	if e.Err == nil {
		return e
	}
	if msg, ok := publicMessage(e.Err); ok {
		e.Message = msg
		return e
	}
	var inner *gqlerror.Error
	if errors.As(e.Err, &inner) && inner.Err == nil {
		return e
	}
	h.log.ErrorContext(ctx, "admin API request failed", "path", e.Path.String(), "err", e.Err)
	e.Message = "internal error; the server log has the details"
	return e
}
