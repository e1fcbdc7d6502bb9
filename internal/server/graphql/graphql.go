// Package graphql owns dproxy's admin API: the GraphQL endpoint
// (POST /api/graphql, schema in schema/, gqlgen code in generated/) and
// GitLab's REST purge (DELETE /api/v4/groups/<id>/dependency_proxy/cache).
// Resolvers are thin: they authenticate with auth, check permissions with
// auth's rules, and read and write through the store and the cache.
//
// It must not import server, commands or tui. Request bodies (which carry
// Docker Hub secrets and passwords) are never logged, and no response ever
// carries a stored secret.
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
	"time"

	gql "github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/netpolicy"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
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

// purger is what the API needs of the cache: forgetting a group's
// in-memory state before its rows are removed, so that a download in
// flight does not undo a purge.
type purger interface {
	ForgetGroup(groupID int64)
}

// Options configure a Handler.
type Options struct {
	// ExternalURL is the URL clients reach dproxy at; its host[:port]
	// starts the image prefixes.
	ExternalURL string
	Logger      *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Released, when set, is called after a purge, a cache clear or a
	// delete dropped blob references, so unreferenced files (and the
	// caches of deleted upstreams) can be collected soon.
	Released func()
	// RateLimits, when set, reports the upstream rate limits last seen.
	RateLimits func() []upstream.CredentialRateLimit
	// VirtualRegistries and VirtualUpstreams cap the virtual registries of
	// a group and the upstreams of a registry (0: GitLab's 5).
	VirtualRegistries, VirtualUpstreams int
	// ForgetUpstream, when set, drops a virtual registry upstream cache's
	// in-memory state before its entries are deleted.
	ForgetUpstream func(upstreamID int64)
	// CheckRateLimit, when set, asks the upstream for a credential's limit.
	CheckRateLimit func(ctx context.Context, creds upstream.Credentials) (upstream.RateLimitCheck, error)
	// AddressPolicy, when set, refuses a virtual-registry upstream whose
	// host it refuses when the upstream is added or its URL changed.
	AddressPolicy *netpolicy.Policy
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (auth.ClientAddr), for throttling checks of a current password.
	TrustedProxies []netip.Prefix
}

// Handler serves the admin API.
type Handler struct {
	store *store.Store
	auth  *auth.Service
	cache purger
	opts  Options
	log   *slog.Logger
	host  string
	gql   http.Handler
}

// New returns the admin API handler.
func New(st *store.Store, svc *auth.Service, c purger, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{store: st, auth: svc, cache: c, opts: opts, log: opts.Logger}
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
		p, err := h.authenticate(r)
		if err != nil {
			status := http.StatusUnauthorized
			if _, ok := publicMessage(err); !ok {
				status = http.StatusInternalServerError
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
		ctx := withUpstreamBudget(withPrincipal(r.Context(), p))
		ctx = context.WithValue(ctx, clientKey{}, auth.ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), h.opts.TrustedProxies))
		h.gql.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticate resolves the request's token to a principal allowed to use
// the admin API. Errors are safe to show.
func (h *Handler) authenticate(r *http.Request) (auth.Principal, error) {
	secret := r.Header.Get("PRIVATE-TOKEN")
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, rest, _ := strings.Cut(a, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return auth.Principal{}, fail("the Authorization header must be `Bearer <token>`, with a personal or group access token that has the api scope")
		}
		secret = strings.TrimSpace(rest)
	}
	if secret == "" {
		return auth.Principal{}, auth.AuthorizeAPI(auth.Principal{})
	}
	p, err := h.auth.AuthenticateToken(r.Context(), secret)
	if auth.IsBlocked(err) {
		return auth.Principal{}, err
	}
	if errors.Is(err, oci.ErrUnauthorized) {
		return auth.Principal{}, fail("invalid token: it is unknown, revoked or expired; create a new one with `dproxy token create --scopes api`")
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "admin API sign-in failed", "err", err)
		return auth.Principal{}, errors.New("internal error while checking the token")
	}
	if err := auth.AuthorizeAPI(p); err != nil {
		return auth.Principal{}, err
	}
	return p, nil
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

func withPrincipal(ctx context.Context, p auth.Principal) context.Context {
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
func principal(ctx context.Context) auth.Principal {
	p, _ := ctx.Value(principalKey{}).(auth.Principal)
	return p
}

// publicError is an error whose message is written for the caller.
type publicError struct{ msg string }

func (e *publicError) Error() string { return e.msg }

// fail returns an error the caller sees as is.
func fail(msg string) error { return &publicError{msg: msg} }

// publicSentinels are the errors whose messages are written for people;
// their own generic text is dropped from the front.
var publicSentinels = []error{oci.ErrNameUnknown, oci.ErrDenied, oci.ErrUnauthorized}

// publicMessage returns the message of an error meant for the caller, and
// false for anything else (a database failure, a bug).
func publicMessage(err error) (string, bool) {
	var pe *publicError
	if errors.As(err, &pe) {
		return pe.msg, true
	}
	for _, s := range publicSentinels {
		if errors.Is(err, s) {
			return strings.TrimPrefix(err.Error(), s.Error()+": "), true
		}
	}
	return "", false
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
