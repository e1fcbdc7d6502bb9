package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// gqlResponse is a GraphQL answer with its HTTP status.
type gqlResponse struct {
	status int
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message string `json:"message"`
		Path    []any  `json:"path"`
	} `json:"errors"`
}

// messages returns the messages of the top-level errors.
func (r gqlResponse) messages() string {
	var m []string
	for _, e := range r.Errors {
		m = append(m, e.Message)
	}
	return strings.Join(m, "; ")
}

// gql posts a GraphQL operation with a Bearer token.
func (e *env) gql(token, query string, vars map[string]any) gqlResponse {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/graphql", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST /api/graphql: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := gqlResponse{status: res.StatusCode}
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("POST /api/graphql: status %d, body is not JSON: %q", res.StatusCode, raw)
	}
	return out
}

// ok runs an operation that must succeed and decodes its data into v.
func (e *env) ok(token, query string, vars map[string]any, v any) {
	e.t.Helper()
	r := e.gql(token, query, vars)
	if r.status != http.StatusOK || len(r.Errors) > 0 {
		e.t.Fatalf("GraphQL %s: status %d, errors: %s", clipQuery(query), r.status, r.messages())
	}
	if v != nil {
		if err := json.Unmarshal(r.Data, v); err != nil {
			e.t.Fatalf("decode data %s: %v", r.Data, err)
		}
	}
}

func clipQuery(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 80 {
		return q[:80] + "…"
	}
	return q
}

// adminToken is the initial admin token the first start wrote.
func (e *env) adminToken() string {
	e.t.Helper()
	b, err := os.ReadFile(e.app.Config.InitialTokenPath())
	if err != nil {
		e.t.Fatalf("read initial admin token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// groupToken creates a group access or deploy token of group with scopes
// straight in the store and returns its secret.
func (e *env) groupToken(group string, kind store.TokenKind, role store.Role, scopes ...string) string {
	e.t.Helper()
	ctx := context.Background()
	g, err := e.app.Store.GroupByPath(ctx, group)
	if err != nil {
		e.t.Fatal(err)
	}
	secret, hash := auth.NewTokenSecret(kind)
	t := store.Token{Kind: kind, Name: "t", GroupID: g.ID, Role: role, Scopes: scopes, Hash: hash}
	if kind == store.TokenDeploy {
		t.Username = "deployer"
	}
	if _, err := e.app.Store.CreateToken(ctx, t); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// groupID is the store id of a group.
func (e *env) groupID(path string) int64 {
	e.t.Helper()
	g, err := e.app.Store.GroupByPath(context.Background(), path)
	if err != nil {
		e.t.Fatalf("group %s: %v", path, err)
	}
	return g.ID
}

// usage is the cache usage of a group, read from the store.
func (e *env) usage(path string) store.Usage {
	e.t.Helper()
	u, err := e.app.Store.GroupUsage(context.Background(), e.groupID(path))
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}
