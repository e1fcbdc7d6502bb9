package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/app"
	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testdns"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// env is a dproxy server on a temp data dir in front of a real registry
// with Docker-Hub-like token auth.
type env struct {
	t    testing.TB
	up   *testregistry.Upstream
	app  *app.App
	srv  *httptest.Server
	host string // host:port of dproxy
	logs *syncBuffer
	// dns answers the server's lookups of upstream names (names not in it
	// do not exist), so that no query leaves the machine.
	dns  *testdns.Table
	once sync.Once
}

type envOptions struct {
	upstream     testregistry.Options
	revalidate   time.Duration
	configure    func(*config.Config)
	keepUpstream *testregistry.Upstream
	keepDataDir  string
	appOptions   []app.Option
	// clock, when set, is the server's clock and the upstream's: both
	// judge token expiry by it, so a test that moves it never sees the
	// upstream refuse a token the server still trusts (or the reverse).
	// A kept upstream must be given it by the test.
	clock *testclock.Clock
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	if o.clock != nil {
		o.appOptions = append(o.appOptions, app.WithClock(o.clock.Now))
		o.upstream.Now = o.clock.Now
	}
	up := o.keepUpstream
	if up == nil {
		up = testregistry.New(t, o.upstream)
	}
	srv := httptest.NewUnstartedServer(nil)
	cfg := config.Default()
	cfg.DataDir = o.keepDataDir
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Upstream = up.URL
	cfg.ExternalURL = "http://" + srv.Listener.Addr().String()
	cfg.Addr = srv.Listener.Addr().String()
	if o.revalidate > 0 {
		cfg.RevalidateTimeout = o.revalidate
	}
	if o.configure != nil {
		o.configure(&cfg)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dns := testdns.New()
	a, err := app.Open(context.Background(), cfg, log, append([]app.Option{app.WithResolver(dns.Resolver())}, o.appOptions...)...)
	if err != nil {
		t.Fatalf("open app: %v", err)
	}
	srv.Config.Handler = a.Server.Handler()
	srv.Start()
	e := &env{t: t, up: up, app: a, srv: srv, host: srv.Listener.Addr().String(), logs: logs, dns: dns}
	t.Cleanup(e.close)
	return e
}

// close stops the server and closes the app; it may be called twice.
func (e *env) close() {
	e.once.Do(func() {
		e.srv.CloseClientConnections()
		e.srv.Close()
		e.app.Close()
	})
}

// user creates a user with a personal token of the given scopes and a role
// in group (when group is not empty); it returns the token secret.
func (e *env) user(username, group string, role store.Role, scopes ...string) string {
	e.t.Helper()
	// Seeding is admin work: it goes through the admin service, as the
	// server itself.
	ctx := context.Background()
	adm, sys := e.app.Admin, admin.System
	if _, err := adm.CreateUser(ctx, sys, admin.UserInput{Username: username}); err != nil {
		e.t.Fatalf("create user %s: %v", username, err)
	}
	if group != "" {
		if _, err := adm.SetMember(ctx, sys, group, username, role); err != nil {
			e.t.Fatalf("set member: %v", err)
		}
	}
	if len(scopes) == 0 {
		scopes = []string{auth.ScopeReadRegistry}
	}
	_, secret, err := adm.CreateToken(ctx, sys, admin.TokenInput{Kind: admin.TokenPersonal, Name: "test", Username: &username, Scopes: scopes})
	if err != nil {
		e.t.Fatalf("create token: %v", err)
	}
	return secret
}

// group creates groups (parents first).
func (e *env) group(paths ...string) {
	e.t.Helper()
	for _, p := range paths {
		if _, err := e.app.Admin.CreateGroup(context.Background(), admin.System, p); err != nil {
			e.t.Fatalf("create group %s: %v", p, err)
		}
	}
}

// ref is the dproxy reference of an image of a group.
func (e *env) ref(group, image string) string {
	return e.host + "/" + group + "/dependency_proxy/containers/" + image
}

// pullOpts are go-containerregistry options that log in as user.
func pullOpts(user, secret string) []remote.Option {
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: user, Password: secret})}
}

func parseRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatalf("parse reference %s: %v", s, err)
	}
	return r
}

// jwt gets a registry token for repository name with Basic credentials.
func (e *env) jwt(user, secret, repo string) string {
	e.t.Helper()
	return fetchJWT(e.t, e.srv.URL, user, secret, repo)
}

// do sends a request to dproxy with an optional Bearer token and returns
// the response with its body read.
// blobFixture is a one-layer image pushed upstream with what alice, a guest
// of group acme, needs to pull its layer through the proxy.
type blobFixture struct {
	digest v1.Hash
	size   int64
	jwt    string // a registry token for the proxy repository
	path   string // the proxy blob path of the layer
	tok    string // alice's personal access token
}

// aliceBlob creates group acme and its guest alice, pushes
// library/<image>:v1 with one layer of size bytes upstream and returns it.
func (e *env) aliceBlob(image string, size int64) blobFixture {
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	img := e.up.PushRandomImage(e.t, "library/"+image, "v1", 1, size)
	layers, err := img.Layers()
	if err != nil {
		e.t.Fatal(err)
	}
	d, _ := layers[0].Digest()
	n, _ := layers[0].Size()
	repo := "acme/dependency_proxy/containers/" + image
	return blobFixture{digest: d, size: n, tok: tok, jwt: e.jwt("alice", tok, repo), path: "/v2/" + repo + "/blobs/" + d.String()}
}

func (e *env) do(method, path, token string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// ociError decodes an OCI error body and returns its first code, failing
// the test when the body is not one.
func ociError(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var env struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("body is not an OCI error envelope: %q (%v)", body, err)
	}
	return env.Errors[0].Code, env.Errors[0].Message
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
