package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// world is a real SQLite store with groups, users and tokens:
//
//	groups  a, a/sub, a/sub/deep, b
//	alice   guest of a            bob      reporter of b
//	min     minimal access on a   subdev   developer of a/sub only
//	root    instance admin        nopw     member of a without a password
type world struct {
	st      *store.Store
	iss     *Issuer
	groups  map[string]store.Group
	users   map[string]store.User
	secrets map[string]string      // token name → secret
	tokens  map[string]store.Token // token name → token
}

// passwords of the world's users; they hash at bcrypt's minimum cost to
// keep the tests quick.
var passwords = map[string]string{
	"alice": "alice-password", "bob": "bob-password", "min": "min-password",
	"subdev": "subdev-password", "root": "root-password",
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	box, err := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "dproxy.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &world{
		st: st, iss: NewIssuer(newTestKey(t), IssuerOptions{Now: fixedClock(t0)}),
		groups: map[string]store.Group{}, users: map[string]store.User{},
		secrets: map[string]string{}, tokens: map[string]store.Token{},
	}
	for _, path := range []string{"a", "a/sub", "a/sub/deep", "b"} {
		g, err := st.CreateGroup(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		w.groups[path] = g
	}
	for _, u := range []struct {
		name, group string
		role        store.Role
		admin       bool
	}{
		{"alice", "a", store.RoleGuest, false},
		{"bob", "b", store.RoleReporter, false},
		{"min", "a", store.RoleMinimalAccess, false},
		{"subdev", "a/sub", store.RoleDeveloper, false},
		{"root", "", 0, true},
		{"nopw", "a", store.RoleOwner, false},
	} {
		var hash string
		if pw, ok := passwords[u.name]; ok {
			if hash, err = hashPassword(pw, bcrypt.MinCost); err != nil {
				t.Fatal(err)
			}
		}
		user, err := st.CreateUser(ctx, store.User{Username: u.name, PasswordHash: hash, Admin: u.admin})
		if err != nil {
			t.Fatal(err)
		}
		w.users[u.name] = user
		if u.group != "" {
			if err := st.SetMember(ctx, w.groups[u.group].ID, user.ID, u.role); err != nil {
				t.Fatal(err)
			}
		}
	}
	past, future := t0.Add(-time.Hour), t0.Add(time.Hour)
	for _, tk := range []struct {
		name     string
		kind     store.TokenKind
		owner    string // user (personal) or group path
		username string
		role     store.Role
		scopes   []string
		expires  *time.Time
		revoked  bool
	}{
		{name: "alice-read", kind: store.TokenPersonal, owner: "alice", scopes: []string{ScopeReadRegistry}, expires: &future},
		{name: "alice-api", kind: store.TokenPersonal, owner: "alice", scopes: []string{ScopeAPI}},
		{name: "alice-write", kind: store.TokenPersonal, owner: "alice", scopes: []string{ScopeWriteRegistry}},
		{name: "alice-vread", kind: store.TokenPersonal, owner: "alice", scopes: []string{ScopeReadVirtualRegistry}},
		{name: "alice-vwrite", kind: store.TokenPersonal, owner: "alice", scopes: []string{ScopeWriteVirtualRegistry}},
		{name: "alice-vread+read", kind: store.TokenPersonal, owner: "alice", scopes: []string{ScopeReadVirtualRegistry, ScopeReadRegistry}},
		{name: "alice-vwrite+write", kind: store.TokenPersonal, owner: "alice", scopes: []string{ScopeWriteVirtualRegistry, ScopeWriteRegistry}},
		{name: "alice-revoked", kind: store.TokenPersonal, owner: "alice", scopes: []string{ScopeReadRegistry}, revoked: true},
		{name: "alice-expired", kind: store.TokenPersonal, owner: "alice", scopes: []string{ScopeReadRegistry}, expires: &past},
		{name: "min-read", kind: store.TokenPersonal, owner: "min", scopes: []string{ScopeReadRegistry}},
		{name: "root-api", kind: store.TokenPersonal, owner: "root", scopes: []string{ScopeAPI}},
		{name: "root-vread", kind: store.TokenPersonal, owner: "root", scopes: []string{ScopeReadVirtualRegistry}},
		{name: "group-a-guest", kind: store.TokenGroup, owner: "a", role: store.RoleGuest, scopes: []string{ScopeReadRegistry}},
		{name: "group-a-minimal", kind: store.TokenGroup, owner: "a", role: store.RoleMinimalAccess, scopes: []string{ScopeReadRegistry}},
		{name: "group-sub-reporter", kind: store.TokenGroup, owner: "a/sub", role: store.RoleReporter, scopes: []string{ScopeReadRegistry}},
		{name: "deploy-a", kind: store.TokenDeploy, owner: "a", username: "deploy-a", scopes: []string{ScopeReadRegistry}},
		{name: "deploy-a-vread", kind: store.TokenDeploy, owner: "a", username: "deploy-a-vread", scopes: []string{ScopeReadVirtualRegistry}},
		{name: "deploy-b", kind: store.TokenDeploy, owner: "b", username: "deploy-b", scopes: []string{ScopeReadRegistry}, revoked: true},
	} {
		secret, hash := NewTokenSecret(tk.kind)
		tok := store.Token{Kind: tk.kind, Name: tk.name, Username: tk.username, Role: tk.role,
			Scopes: tk.scopes, Hash: hash, ExpiresAt: tk.expires, CreatedAt: t0.Add(-24 * time.Hour)}
		if tk.kind == store.TokenPersonal {
			tok.UserID = w.users[tk.owner].ID
		} else {
			tok.GroupID = w.groups[tk.owner].ID
		}
		if tk.revoked {
			tok.RevokedAt = &past
		}
		if tok, err = st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		w.secrets[tk.name], w.tokens[tk.name] = secret, tok
	}
	return w
}

func (w *world) service(now time.Time) *Service {
	return NewService(w.st, w.iss, ServiceOptions{Now: fixedClock(now)})
}

// principal returns the principal a test case names: a username for a
// password sign-in, or a token name.
func (w *world) principal(t *testing.T, who string) Principal {
	t.Helper()
	if tok, ok := w.tokens[who]; ok {
		p := Principal{Token: &tok}
		if tok.Kind == store.TokenPersonal {
			for _, u := range w.users {
				if u.ID == tok.UserID {
					p.User = &u
				}
			}
		}
		return p
	}
	u, ok := w.users[who]
	if !ok {
		t.Fatalf("no user or token %q in the world", who)
	}
	return Principal{User: &u}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	svc := w.service(t0)
	ctx := context.Background()
	s := w.secrets
	cases := []struct {
		name, username, password string
		wantSubject              string // "" means refused
	}{
		{"user password", "alice", passwords["alice"], "user:" + id(w.users["alice"].ID)},
		{"admin password", "root", passwords["root"], "user:" + id(w.users["root"].ID)},
		{"wrong password", "alice", "alice-Password", ""},
		{"another user's password", "alice", passwords["bob"], ""},
		{"username is case-sensitive", "Alice", passwords["alice"], ""},
		{"unknown user", "mallory", "whatever", ""},
		{"unknown user with an empty password", "mallory", "", ""},
		{"user without a password", "nopw", "", ""},
		{"user without a password, any password", "nopw", "x", ""},
		{"empty password", "alice", "", ""},
		{"over-long password", "alice", strings.Repeat("x", 100), ""},
		{"personal token with its user's name", "alice", s["alice-read"], "token:" + id(w.tokens["alice-read"].ID)},
		{"personal token with another username", "bob", s["alice-read"], ""},
		{"personal token with no username", "", s["alice-read"], ""},
		{"personal token of an admin", "root", s["root-api"], "token:" + id(w.tokens["root-api"].ID)},
		{"deploy token with its username", "deploy-a", s["deploy-a"], "token:" + id(w.tokens["deploy-a"].ID)},
		{"deploy token with a user's name", "alice", s["deploy-a"], ""},
		{"revoked deploy token", "deploy-b", s["deploy-b"], ""},
		{"group token, any username", "whoever", s["group-a-guest"], "token:" + id(w.tokens["group-a-guest"].ID)},
		{"group token, empty username", "", s["group-a-guest"], "token:" + id(w.tokens["group-a-guest"].ID)},
		{"revoked token", "alice", s["alice-revoked"], ""},
		{"expired token", "alice", s["alice-expired"], ""},
		{"unknown token", "alice", "dpxp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ""},
		{"token secret with a character changed", "alice", s["alice-read"][:len(s["alice-read"])-1] + "!", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := svc.Authenticate(ctx, c.username, c.password)
			if c.wantSubject == "" {
				if !errors.Is(err, oci.ErrUnauthorized) {
					t.Fatalf("Authenticate: principal %q, err %v; want oci.ErrUnauthorized", p.Subject(), err)
				}
				if !strings.Contains(err.Error(), "invalid username or password/token") {
					t.Errorf("error %q does not say what is wrong", err)
				}
				if c.password != "" && strings.Contains(err.Error(), c.password) {
					t.Errorf("error echoes the secret: %q", err)
				}
				if !p.IsZero() {
					t.Errorf("a refused sign-in returned principal %q", p.Subject())
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if p.Subject() != c.wantSubject {
				t.Errorf("subject %q, want %q", p.Subject(), c.wantSubject)
			}
		})
	}

	t.Run("principal shapes", func(t *testing.T) {
		t.Parallel()
		pw, _ := svc.Authenticate(ctx, "alice", passwords["alice"])
		if pw.User == nil || pw.Token != nil || pw.User.Username != "alice" {
			t.Errorf("password sign-in: %+v", pw)
		}
		pt, _ := svc.Authenticate(ctx, "alice", s["alice-read"])
		if pt.User == nil || pt.Token == nil || pt.User.ID != pt.Token.UserID || pt.Name() != "alice" {
			t.Errorf("personal token: %+v", pt)
		}
		dt, _ := svc.Authenticate(ctx, "deploy-a", s["deploy-a"])
		if dt.User != nil || dt.Token == nil || dt.Token.Kind != store.TokenDeploy || dt.Name() != "deploy-a" {
			t.Errorf("deploy token: %+v", dt)
		}
		gt, _ := svc.Authenticate(ctx, "x", s["group-a-guest"])
		if gt.User != nil || gt.Token == nil || gt.Token.Role != store.RoleGuest || gt.Name() != "group-token-"+id(gt.Token.ID) {
			t.Errorf("group token: %+v", gt)
		}
	})

	t.Run("token expiring later works until then", func(t *testing.T) {
		t.Parallel()
		late := w.service(t0.Add(2 * time.Hour)) // alice-read expires at t0+1h
		if _, err := late.Authenticate(ctx, "alice", s["alice-read"]); !errors.Is(err, oci.ErrUnauthorized) {
			t.Errorf("expired by the clock: %v, want oci.ErrUnauthorized", err)
		}
	})

	t.Run("AuthenticateToken takes a bare secret", func(t *testing.T) {
		t.Parallel()
		p, err := svc.AuthenticateToken(ctx, s["root-api"])
		if err != nil || !p.IsAdmin() || !p.HasScope(ScopeAPI) {
			t.Errorf("AuthenticateToken(root-api): %+v, %v", p, err)
		}
		for _, secret := range []string{"", passwords["root"], s["alice-revoked"], s["deploy-b"]} {
			if _, err := svc.AuthenticateToken(ctx, secret); !errors.Is(err, oci.ErrUnauthorized) {
				t.Errorf("AuthenticateToken accepted a bad secret: %v", err)
			}
		}
	})
}

func id(n int64) string { return strconv.FormatInt(n, 10) }

func TestAuthenticateRecordsTokenUse(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	tok := w.tokens["alice-api"]
	lastUsed := func() *time.Time {
		t.Helper()
		got, err := w.st.TokenByID(ctx, tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastUsedAt
	}
	if lu := lastUsed(); lu != nil {
		t.Fatalf("new token already used at %v", lu)
	}
	steps := []struct {
		at   time.Time
		want time.Time // the recorded last use after signing in at at
	}{
		{t0, t0},
		{t0.Add(10 * time.Second), t0}, // within the touch interval: no write
		{t0.Add(2 * time.Minute), t0.Add(2 * time.Minute)},
	}
	for _, s := range steps {
		if _, err := w.service(s.at).Authenticate(ctx, "alice", w.secrets["alice-api"]); err != nil {
			t.Fatal(err)
		}
		if lu := lastUsed(); lu == nil || !lu.Equal(s.want) {
			t.Errorf("after a sign-in at %v: last used %v, want %v", s.at, lu, s.want)
		}
	}
	// A refused sign-in records nothing.
	if _, err := w.service(t0.Add(time.Hour)).Authenticate(ctx, "bob", w.secrets["alice-api"]); err == nil {
		t.Fatal("wrong username accepted")
	}
	if lu := lastUsed(); !lu.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("a refused sign-in changed last used to %v", lu)
	}
}

// subjectClaims are the claims of a JWT minted for subject before any
// credential change.
func subjectClaims(subject string) Claims {
	return Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: subject}}
}

func TestPrincipalFromClaims(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	svc := w.service(t0)
	cases := []struct {
		name, subject string
		svc           *Service
		want          string // wanted principal name; "" means refused
	}{
		{"user", "user:" + id(w.users["alice"].ID), svc, "alice"},
		{"personal token loads its user", "token:" + id(w.tokens["alice-read"].ID), svc, "alice"},
		{"deploy token", "token:" + id(w.tokens["deploy-a"].ID), svc, "deploy-a"},
		{"group token", "token:" + id(w.tokens["group-a-guest"].ID), svc, "group-token-" + id(w.tokens["group-a-guest"].ID)},
		{"revoked token", "token:" + id(w.tokens["alice-revoked"].ID), svc, ""},
		{"expired token", "token:" + id(w.tokens["alice-expired"].ID), svc, ""},
		{"token expired since the JWT was minted", "token:" + id(w.tokens["alice-read"].ID), w.service(t0.Add(2 * time.Hour)), ""},
		{"unknown user", "user:999999", svc, ""},
		{"unknown token", "token:999999", svc, ""},
		{"malformed id", "user:abc", svc, ""},
		{"negative id", "token:-1", svc, ""},
		{"username instead of id", "user:alice", svc, ""},
		{"unknown kind", "group:1", svc, ""},
		{"empty", "", svc, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := c.svc.PrincipalFromClaims(ctx, subjectClaims(c.subject))
			if c.want == "" {
				if !errors.Is(err, oci.ErrUnauthorized) {
					t.Errorf("PrincipalFromClaims(%q) = %q, %v; want oci.ErrUnauthorized", c.subject, p.Subject(), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("PrincipalFromClaims(%q): %v", c.subject, err)
			}
			if p.Subject() != c.subject || p.Name() != c.want {
				t.Errorf("got %q (%s), want %q (%s)", p.Subject(), p.Name(), c.subject, c.want)
			}
		})
	}

	t.Run("revocation after minting takes effect at once", func(t *testing.T) {
		t.Parallel()
		p, err := svc.Authenticate(ctx, "alice", w.secrets["alice-write"])
		if err != nil {
			t.Fatal(err)
		}
		tok, _, _, err := w.iss.Mint(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, p2, err := svc.PrincipalFromAccessToken(ctx, tok); err != nil || p2.Subject() != p.Subject() {
			t.Fatalf("before revocation: %q, %v", p2.Subject(), err)
		}
		if err := w.st.RevokeToken(ctx, p.Token.ID, t0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.PrincipalFromAccessToken(ctx, tok); !errors.Is(err, oci.ErrUnauthorized) {
			t.Errorf("after revocation: %v, want oci.ErrUnauthorized", err)
		}
	})
}

// TestTokensCarryNoSecret signs in with a password and with a token secret
// and checks neither ends up in the minted JWTs.
func TestTokensCarryNoSecret(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	svc := w.service(t0)
	for _, c := range []struct{ username, secret string }{
		{"alice", passwords["alice"]},
		{"alice", w.secrets["alice-read"]},
		{"deploy-a", w.secrets["deploy-a"]},
	} {
		p, err := svc.Authenticate(ctx, c.username, c.secret)
		if err != nil {
			t.Fatal(err)
		}
		access := []Access{{Type: "repository", Name: "a/dependency_proxy/containers/alpine", Actions: []string{"pull"}}}
		tok, _, _, err := w.iss.Mint(p, access)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := w.iss.MintRefresh(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, jwt := range []string{tok, ref} {
			parts := strings.Split(jwt, ".")
			payload, err := base64.RawURLEncoding.DecodeString(parts[1])
			if err != nil {
				t.Fatal(err)
			}
			header, _ := base64.RawURLEncoding.DecodeString(parts[0])
			body := string(header) + string(payload)
			hash := base64.RawURLEncoding.EncodeToString(HashToken(c.secret))
			if strings.Contains(body, c.secret) || strings.Contains(jwt, c.secret) || strings.Contains(body, hash) {
				t.Errorf("JWT for %s carries the secret or its hash: %s", c.username, body)
			}
			if !strings.Contains(string(payload), `"sub":"`+p.Subject()+`"`) {
				t.Errorf("payload %s lacks subject %s", payload, p.Subject())
			}
		}
		if _, err := svc.PrincipalFromRefreshToken(ctx, ref); err != nil {
			t.Errorf("refresh token of %s: %v", c.username, err)
		}
		if _, err := svc.PrincipalFromRefreshToken(ctx, tok); !errors.Is(err, oci.ErrUnauthorized) {
			t.Errorf("access token taken as refresh token: %v", err)
		}
	}
}

func TestAuthorizePull(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	svc := w.service(t0)
	cases := []struct {
		name, who, group string
		is               error // nil means allowed
		says             string
	}{
		{"guest", "alice", "a", nil, ""},
		{"guest, inherited by a subgroup", "alice", "a/sub", nil, ""},
		{"guest, inherited two levels down", "alice", "a/sub/deep", nil, ""},
		{"non-member", "alice", "b", oci.ErrNameUnknown, "group b "},
		{"unknown group", "alice", "nope", oci.ErrNameUnknown, "group nope "},
		{"member of a subgroup only, on the parent", "subdev", "a", oci.ErrNameUnknown, "group a "},
		{"member of a subgroup only, on the subgroup", "subdev", "a/sub", nil, ""},
		{"minimal access", "min", "a", oci.ErrDenied, "guest role"},
		{"minimal access, inherited", "min", "a/sub", oci.ErrDenied, "guest role"},
		{"minimal access with a token", "min-read", "a", oci.ErrDenied, "guest role"},
		{"admin, password, not a member", "root", "b", nil, ""},
		{"admin, password, deep group", "root", "a/sub/deep", nil, ""},
		{"admin, api token", "root-api", "a", nil, ""},
		{"admin, unknown group", "root", "nope", oci.ErrNameUnknown, "group nope "},
		{"admin, token without a registry scope", "root-vread", "a", oci.ErrDenied, "read_registry"},
		{"personal token, read_registry", "alice-read", "a", nil, ""},
		{"personal token, api", "alice-api", "a/sub", nil, ""},
		{"personal token, write_registry", "alice-write", "a", nil, ""},
		{"personal token, read_virtual_registry alone", "alice-vread", "a", oci.ErrDenied, "read_registry"},
		{"personal token, write_virtual_registry alone", "alice-vwrite", "a", oci.ErrDenied, "write_registry"},
		{"personal token, read_virtual_registry + read_registry", "alice-vread+read", "a", nil, ""},
		{"personal token, write_virtual_registry + write_registry", "alice-vwrite+write", "a", nil, ""},
		{"personal token, non-member group", "alice-read", "b", oci.ErrNameUnknown, "group b "},
		{"group token, its group", "group-a-guest", "a", nil, ""},
		{"group token, a subgroup", "group-a-guest", "a/sub/deep", nil, ""},
		{"group token, another group", "group-a-guest", "b", oci.ErrNameUnknown, "group b "},
		{"group token of a subgroup, on the parent", "group-sub-reporter", "a", oci.ErrNameUnknown, "group a "},
		{"group token of a subgroup, below it", "group-sub-reporter", "a/sub/deep", nil, ""},
		{"group token below guest", "group-a-minimal", "a", oci.ErrDenied, "guest role"},
		{"deploy token, its group", "deploy-a", "a", nil, ""},
		{"deploy token, a subgroup", "deploy-a", "a/sub", nil, ""},
		{"deploy token, another group", "deploy-a", "b", oci.ErrNameUnknown, "group b "},
		{"deploy token, unknown group", "deploy-a", "nope", oci.ErrNameUnknown, "group nope "},
		{"deploy token without a registry scope", "deploy-a-vread", "a", oci.ErrDenied, "read_registry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g, err := svc.AuthorizePull(ctx, w.principal(t, c.who), c.group)
			if c.is == nil {
				if err != nil {
					t.Fatalf("AuthorizePull(%s, %s): %v", c.who, c.group, err)
				}
				if g.ID != w.groups[c.group].ID || g.Path != c.group {
					t.Errorf("returned group %+v, want %s", g, c.group)
				}
				return
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error()+" ", c.says) {
				t.Errorf("AuthorizePull(%s, %s): %v; want %v saying %q", c.who, c.group, err, c.is, c.says)
			}
			if g != (store.Group{}) {
				t.Errorf("a refusal returned group %+v", g)
			}
		})
	}

	t.Run("a hidden group and a missing one look the same", func(t *testing.T) {
		t.Parallel()
		p := w.principal(t, "alice")
		_, hidden := svc.AuthorizePull(ctx, p, "b")
		_, missing := svc.AuthorizePull(ctx, p, "c")
		if hidden == nil || missing == nil || strings.Replace(hidden.Error(), " b ", " c ", 1) != missing.Error() {
			t.Errorf("hidden %q vs missing %q", hidden, missing)
		}
	})
	t.Run("nobody must log in", func(t *testing.T) {
		t.Parallel()
		if _, err := svc.AuthorizePull(ctx, Principal{}, "a"); !errors.Is(err, oci.ErrUnauthorized) {
			t.Errorf("zero principal: %v, want oci.ErrUnauthorized", err)
		}
	})
	t.Run("membership changes apply at once", func(t *testing.T) {
		t.Parallel()
		u, err := w.st.CreateUser(ctx, store.User{Username: "carol"})
		if err != nil {
			t.Fatal(err)
		}
		p := Principal{User: &u}
		if _, err := svc.AuthorizePull(ctx, p, "b"); !errors.Is(err, oci.ErrNameUnknown) {
			t.Fatalf("before joining: %v", err)
		}
		if err := w.st.SetMember(ctx, w.groups["b"].ID, u.ID, store.RoleGuest); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AuthorizePull(ctx, p, "b"); err != nil {
			t.Errorf("after joining as guest: %v", err)
		}
	})
}

func TestGrantedActions(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	svc := w.service(t0)
	repo := func(g, image string) string { return g + "/dependency_proxy/containers/" + image }
	cases := []struct {
		name, who, scope string
		want             []string
	}{
		{"pull", "alice", "repository:" + repo("a", "alpine") + ":pull", []string{"pull"}},
		{"pull and push", "alice", "repository:" + repo("a", "alpine") + ":pull,push", []string{"pull"}},
		{"push and pull", "alice", "repository:" + repo("a", "bitnami/redis") + ":push,pull", []string{"pull"}},
		{"wildcard", "alice", "repository:" + repo("a/sub", "alpine") + ":*", []string{"pull"}},
		{"push only", "alice", "repository:" + repo("a", "alpine") + ":push", nil},
		{"delete only", "root", "repository:" + repo("a", "alpine") + ":delete", nil},
		{"hidden group", "alice", "repository:" + repo("b", "alpine") + ":pull", nil},
		{"unknown group", "root", "repository:" + repo("nope", "alpine") + ":pull", nil},
		{"below guest", "min", "repository:" + repo("a", "alpine") + ":pull", nil},
		{"token without the scope", "alice-vread", "repository:" + repo("a", "alpine") + ":pull", nil},
		{"deploy token in a subgroup", "deploy-a", "repository:" + repo("a/sub", "alpine") + ":pull", []string{"pull"}},
		{"deploy token elsewhere", "deploy-a", "repository:" + repo("b", "alpine") + ":pull", nil},
		{"admin anywhere", "root", "repository:" + repo("b", "alpine") + ":pull", []string{"pull"}},
		{"not a dependency proxy repository", "root", "repository:library/alpine:pull", nil},
		{"invalid image name", "root", "repository:" + repo("a", "Alpine") + ":pull", nil},
		{"other resource type", "root", "registry:catalog:*", nil},
		{"resource class", "root", "repository(plugin):" + repo("a", "alpine") + ":pull", nil},
		{"malformed", "root", "repository:" + repo("a", "alpine"), nil},
		{"nobody", "", "repository:" + repo("a", "alpine") + ":pull", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var p Principal
			if c.who != "" {
				p = w.principal(t, c.who)
			}
			got := svc.GrantedActions(ctx, p, c.scope)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("GrantedActions(%s, %q) = %q, want %q", c.who, c.scope, got, c.want)
			}
		})
	}
}

// TestConcurrentSignIns runs sign-ins and permission checks in parallel
// against one store (run with -race).
func TestConcurrentSignIns(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Go(func() {
			svc := w.service(t0.Add(time.Duration(i) * time.Minute))
			p, err := svc.Authenticate(ctx, "alice", w.secrets["alice-api"])
			if err == nil {
				_, err = svc.AuthorizePull(ctx, p, "a/sub")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestMirrorAndAnonymousGrants covers mirror-mode names (served by the
// mirror group "a") and the anonymous principal, which may pull only from a
// group whose setting allows it (b here; not inherited by a/sub).
func TestMirrorAndAnonymousGrants(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	ps, err := w.st.ProxySetting(ctx, w.groups["b"].ID)
	if err != nil {
		t.Fatal(err)
	}
	ps.AllowAnonymousPull = true
	if err := w.st.UpdateProxySetting(ctx, ps); err != nil {
		t.Fatal(err)
	}
	mirrorA := NewService(w.st, w.iss, ServiceOptions{Now: fixedClock(t0), MirrorGroup: "a"})
	mirrorB := NewService(w.st, w.iss, ServiceOptions{Now: fixedClock(t0), MirrorGroup: "b"})
	repo := func(g string) string { return "repository:" + g + "/dependency_proxy/containers/alpine:pull" }
	cases := []struct {
		name  string
		svc   *Service
		p     Principal
		scope string
		want  []string
	}{
		{"member of the mirror group", mirrorA, w.principal(t, "alice"), "repository:library/alpine:pull", []string{"pull"}},
		{"short official name", mirrorA, w.principal(t, "alice"), "repository:alpine:pull", []string{"pull"}},
		{"non-member of the mirror group", mirrorA, w.principal(t, "bob"), "repository:library/alpine:pull", nil},
		{"invalid mirror name", mirrorA, w.principal(t, "alice"), "repository:Library/Alpine:pull", nil},
		{"proxy names win over the mirror", mirrorA, w.principal(t, "alice"), repo("b"), nil},
		{"anonymous on an allowing group", mirrorA, AnonymousPrincipal, repo("b"), []string{"pull"}},
		{"anonymous on a group without the setting", mirrorA, AnonymousPrincipal, repo("a"), nil},
		{"anonymous on a subgroup of an allowing group", mirrorB, AnonymousPrincipal, "repository:b/sub/dependency_proxy/containers/alpine:pull", nil},
		{"anonymous on an unknown group", mirrorA, AnonymousPrincipal, repo("nope"), nil},
		{"anonymous through the mirror of an allowing group", mirrorB, AnonymousPrincipal, "repository:library/alpine:pull", []string{"pull"}},
		{"anonymous through the mirror of a group without the setting", mirrorA, AnonymousPrincipal, "repository:library/alpine:pull", nil},
		{"anonymous push", mirrorB, AnonymousPrincipal, "repository:library/alpine:push", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := c.svc.GrantedActions(ctx, c.p, c.scope); !reflect.DeepEqual(got, c.want) {
				t.Errorf("GrantedActions(%s, %q) = %q, want %q", c.p.Name(), c.scope, got, c.want)
			}
		})
	}

	t.Run("the anonymous subject round-trips and has no scope", func(t *testing.T) {
		p, err := mirrorA.PrincipalFromClaims(ctx, subjectClaims(AnonymousPrincipal.Subject()))
		if err != nil || !p.Anonymous || p.IsZero() {
			t.Fatalf("PrincipalFromClaims(anonymous) = %+v, %v", p, err)
		}
		if p.HasScope(ScopeReadRegistry) || p.HasScope(ScopeAPI) || AuthorizeAPI(p) == nil {
			t.Error("the anonymous principal has a scope or admin API access")
		}
		if _, err := mirrorA.AuthorizePull(ctx, p, "a"); !errors.Is(err, oci.ErrUnauthorized) {
			t.Errorf("anonymous pull from a group without the setting: %v, want ErrUnauthorized", err)
		}
	})
}
