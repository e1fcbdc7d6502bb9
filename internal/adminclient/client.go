// Package adminclient is the Go client of dproxy's admin GraphQL API
// (POST /api/graphql): one typed method per query and mutation the CLI and
// the TUI use. It owns the hasura/go-graphql-client dependency and turns
// every failure into an error whose message a person can act on: the server
// cannot be reached, the token is refused, or the server's own message.
//
// It must not import commands, tui, server or anything below the HTTP API;
// the schema it speaks is internal/server/graphql/schema/schema.graphqls,
// and a contract test runs every method against the real server.
package adminclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	graphql "github.com/hasura/go-graphql-client"
)

// DefaultTimeout bounds one API request when Options.HTTPClient is nil.
const DefaultTimeout = 2 * time.Minute

// Options configure a Client.
type Options struct {
	// HTTPClient sends the requests (default: a client with DefaultTimeout).
	HTTPClient *http.Client
	// UserAgent is sent with every request (default "dproxy-cli").
	UserAgent string
}

// Client talks to one dproxy server with one token. It is safe for
// concurrent use.
type Client struct {
	server string
	gql    *graphql.Client
}

// New returns a client of the dproxy at serverURL (scheme://host[:port],
// optionally with a path prefix) authenticating with token. An empty token
// is allowed; the server then answers every call with an UnauthorizedError.
func New(serverURL, token string, opts Options) (*Client, error) {
	server := strings.TrimRight(strings.TrimSpace(serverURL), "/")
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://host:port or https://host[:port]", serverURL)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "dproxy-cli"
	}
	gql := graphql.NewClient(server+"/api/graphql", hc).WithRequestModifier(func(r *http.Request) {
		r.Header.Set("User-Agent", ua)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
	})
	return &Client{server: server, gql: gql}, nil
}

// Server is the server URL the client talks to.
func (c *Client) Server() string { return c.server }

// UnreachableError means no HTTP answer came from the server.
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	cause := ""
	var op *net.OpError
	if errors.As(e.Err, &op) && op.Err != nil {
		cause = " (" + op.Err.Error() + ")"
	} else if errors.Is(e.Err, context.DeadlineExceeded) {
		cause = " (timed out)"
	}
	return fmt.Sprintf("cannot reach dproxy at %s%s: is `dproxy serve` running? Set --server or DPROXY_SERVER", e.Server, cause)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// SchemeError means the server speaks TLS and the client plain HTTP, or
// the other way round: the server URL has the wrong scheme.
type SchemeError struct {
	Server string
	// ServerTLS: the server speaks TLS (https), the client did not.
	ServerTLS bool
}

func (e *SchemeError) Error() string {
	u, err := url.Parse(e.Server)
	if err != nil {
		return fmt.Sprintf("dproxy at %s speaks another protocol than its URL says", e.Server)
	}
	if e.ServerTLS {
		u.Scheme = "https"
		return fmt.Sprintf("dproxy at %s speaks HTTPS (TLS), not plain HTTP: use --server %s (or DPROXY_SERVER)", e.Server, u)
	}
	u.Scheme = "http"
	return fmt.Sprintf("dproxy at %s speaks plain HTTP, not HTTPS (TLS): use --server %s (or DPROXY_SERVER), or serve TLS with --tls-cert and --tls-key", e.Server, u)
}

// UnauthorizedError means the server refused the token (HTTP 401): it is
// missing, unknown, revoked, expired or lacks the api scope.
type UnauthorizedError struct {
	Server string
	// Message is the server's reason.
	Message string
}

func (e *UnauthorizedError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "the token is missing or invalid"
	}
	return fmt.Sprintf("dproxy at %s refused the token: %s; run `dproxy login --server %s` or set DPROXY_TOKEN to a token with the api scope", e.Server, msg, e.Server)
}

// APIError carries the messages the server answered with: a refused
// permission or an unknown object (GraphQL errors) or input the server
// understood but refused (a payload's errors).
type APIError struct {
	Messages []string
}

func (e *APIError) Error() string { return strings.Join(e.Messages, "; ") }

// NotFoundError means an object does not exist or the caller cannot see it.
type NotFoundError struct {
	Kind string // "group", "user"
	Name string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s %q not found (or you cannot see it)", e.Kind, e.Name)
}

// query runs a query and translates its failure.
func (c *Client) query(ctx context.Context, q any, vars map[string]any) error {
	return c.translate(c.gql.Query(ctx, q, vars))
}

// mutate runs a mutation and translates its failure; payloadErrors are the
// payload's errors list, reported as an APIError when not empty.
func (c *Client) mutate(ctx context.Context, m any, vars map[string]any, payloadErrors func() []string) error {
	if err := c.translate(c.gql.Mutate(ctx, m, vars)); err != nil {
		return err
	}
	if msgs := payloadErrors(); len(msgs) > 0 {
		return &APIError{Messages: msgs}
	}
	return nil
}

// translate maps the GraphQL client's errors to this package's.
func (c *Client) translate(err error) error {
	if err == nil {
		return nil
	}
	var gerrs graphql.Errors
	if !errors.As(err, &gerrs) {
		return fmt.Errorf("admin API request to %s: %w", c.server, err)
	}
	var msgs []string
	for _, ge := range gerrs {
		cause := ge.Unwrap()
		var ne graphql.NetworkError
		switch {
		case cause == nil:
			msgs = append(msgs, ge.Message)
		case errors.As(cause, &ne):
			return c.statusError(ne)
		case plainHTTPAnswer(cause):
			return &SchemeError{Server: c.server}
		case isTransport(cause):
			return &UnreachableError{Server: c.server, Err: cause}
		default:
			return fmt.Errorf("admin API request to %s: %w", c.server, cause)
		}
	}
	return &APIError{Messages: msgs}
}

// isTransport reports whether err happened before any HTTP answer.
func isTransport(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

// plainHTTPAnswer reports whether err is a TLS client's failure to
// handshake with a server that answered in plain HTTP (or not TLS at all).
func plainHTTPAnswer(err error) bool {
	var rh tls.RecordHeaderError
	// net/http reports an HTTP answer to a TLS hello with an error of its own
	// that has no type to match.
	return errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// tlsServerAnswer is what Go's HTTPS servers (dproxy's included) answer to
// a plain HTTP request, with status 400.
const tlsServerAnswer = "Client sent an HTTP request to an HTTPS server"

// statusError explains an HTTP error status, using the GraphQL error body
// the server sends with it.
func (c *Client) statusError(ne graphql.NetworkError) error {
	if ne.StatusCode() == http.StatusBadRequest && strings.HasPrefix(strings.TrimSpace(ne.Body()), tlsServerAnswer) {
		return &SchemeError{Server: c.server, ServerTLS: true}
	}
	msg := bodyMessage(ne.Body())
	switch ne.StatusCode() {
	case http.StatusUnauthorized:
		return &UnauthorizedError{Server: c.server, Message: msg}
	case http.StatusNotFound:
		if strings.HasPrefix(strings.TrimSpace(ne.Body()), "{") && msg != "" {
			return fmt.Errorf("%s has no admin API (HTTP 404 on /api/graphql): %s", c.server, msg) // e.g. it is on admin-addr
		}
		return fmt.Errorf("%s has no admin API (HTTP 404 on /api/graphql): is --server the URL of a dproxy?", c.server)
	}
	if msg == "" {
		msg = http.StatusText(ne.StatusCode())
	}
	return fmt.Errorf("admin API at %s answered HTTP %d: %s", c.server, ne.StatusCode(), msg)
}
