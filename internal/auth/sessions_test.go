package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
)

// A new password, or blocking the user, ends every JWT minted for the
// user before: access and refresh, from a password or a personal token.
func TestCredentialVersionEndsJWTs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		change func(w *world, u store.User) error
	}{
		{"new password", func(w *world, u store.User) error {
			h := "$2a$04$" + strings.Repeat("x", 53)
			return w.st.UpdateUser(ctx, u.ID, store.UserChange{PasswordHash: &h})
		}},
		{"blocked", func(w *world, u store.User) error {
			yes := true
			return w.st.UpdateUser(ctx, u.ID, store.UserChange{Blocked: &yes})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			svc := w.service(t0)
			type jwt struct{ token, kind string }
			var minted []jwt
			for _, secret := range []string{passwords["alice"], w.secrets["alice-api"]} {
				p, err := svc.Authenticate(ctx, "alice", secret)
				if err != nil {
					t.Fatal(err)
				}
				access, _, _, err := w.iss.Mint(p, nil)
				if err != nil {
					t.Fatal(err)
				}
				refresh, err := w.iss.MintRefresh(p)
				if err != nil {
					t.Fatal(err)
				}
				minted = append(minted, jwt{access, KindAccess}, jwt{refresh, KindRefresh})
			}
			check := func(j jwt) error {
				if j.kind == KindRefresh {
					_, err := svc.PrincipalFromRefreshToken(ctx, j.token)
					return err
				}
				_, _, err := svc.PrincipalFromAccessToken(ctx, j.token)
				return err
			}
			for i, j := range minted {
				if err := check(j); err != nil {
					t.Fatalf("JWT %d before the change: %v", i, err)
				}
			}
			// Another user's change ends nothing of alice's.
			if err := c.change(w, w.users["bob"]); err != nil {
				t.Fatal(err)
			}
			for i, j := range minted {
				if err := check(j); err != nil {
					t.Fatalf("JWT %d after bob's change: %v", i, err)
				}
			}
			if err := c.change(w, w.users["alice"]); err != nil {
				t.Fatal(err)
			}
			for i, j := range minted {
				if err := check(j); !errors.Is(err, oci.ErrUnauthorized) {
					t.Errorf("JWT %d after the change: %v, want oci.ErrUnauthorized", i, err)
				}
			}
			// The group token's JWTs name no user and are not touched.
			p, err := svc.Authenticate(ctx, "any", w.secrets["group-a-guest"])
			if err != nil {
				t.Fatal(err)
			}
			tok, _, _, _ := w.iss.Mint(p, nil)
			if _, _, err := svc.PrincipalFromAccessToken(ctx, tok); err != nil {
				t.Errorf("group token JWT: %v", err)
			}
		})
	}
}

func TestBlockedUserCannotSignIn(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	svc := w.service(t0)
	yes := true
	if err := w.st.UpdateUser(ctx, w.users["alice"].ID, store.UserChange{Blocked: &yes}); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{passwords["alice"], w.secrets["alice-api"]} {
		if _, err := svc.Authenticate(ctx, "alice", secret); !errors.Is(err, oci.ErrUnauthorized) || !strings.Contains(err.Error(), "blocked") {
			t.Errorf("a blocked user's right credentials: %v, want an error saying blocked", err)
		}
	}
	if _, err := svc.Authenticate(ctx, "alice", "wrong"); err == nil || strings.Contains(err.Error(), "blocked") {
		t.Errorf("a wrong password of a blocked user: %v; want the usual answer", err)
	}
	if _, err := svc.AuthenticateToken(ctx, w.secrets["alice-api"]); !errors.Is(err, oci.ErrUnauthorized) || !IsBlocked(err) {
		t.Errorf("a blocked user's token on the admin API: %v", err)
	}
	if _, err := svc.Authenticate(ctx, "alice", "wrong"); IsBlocked(err) {
		t.Errorf("IsBlocked(%v) = true", err)
	}
	// A JWT minted with the current version still fails: the user is blocked.
	u, _ := w.st.UserByID(ctx, w.users["alice"].ID)
	c := subjectClaims("user:" + id(u.ID))
	c.CredentialVersion = u.CredentialVersion
	if _, err := svc.PrincipalFromClaims(ctx, c); !errors.Is(err, oci.ErrUnauthorized) {
		t.Errorf("claims of a blocked user: %v", err)
	}
}

func TestSignInIsThrottledAndLogged(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	clock := testclock.New(t0)
	var logs bytes.Buffer
	svc := NewService(w.st, w.iss, ServiceOptions{Now: fixedClock(t0),
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Limiter: NewLimiter(LimiterOptions{Now: clock.Now})})

	for i := range DefaultFailuresPerUser {
		secret := "wrong-guess"
		if i%2 == 1 {
			secret = "dpxp_unknown-token"
		}
		if _, err := svc.SignIn(ctx, addrA, "alice", secret); !errors.Is(err, oci.ErrUnauthorized) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	_, err := svc.SignIn(ctx, addrA, "alice", passwords["alice"])
	wantThrottled(t, "the right password", err, false, time.Minute)
	_, err = svc.SignInToken(ctx, addrB, "alice", w.secrets["alice-api"])
	wantThrottled(t, "alice's token from another address", err, false, time.Minute)
	wantThrottled(t, "CheckSignIn", svc.CheckSignIn("alice", addrB), false, time.Minute)
	if _, err := svc.SignIn(ctx, addrA, "bob", passwords["bob"]); err != nil {
		t.Errorf("bob at the same address: %v", err)
	}
	// Basic credentials on the registry API count too.
	for range DefaultFailuresPerUser {
		if _, err := svc.SignInToken(ctx, addrB, "bob", "not-a-token"); !errors.Is(err, oci.ErrUnauthorized) {
			t.Fatalf("a password as Basic credentials: %v", err)
		}
	}
	_, err = svc.SignInToken(ctx, addrB, "bob", w.secrets["alice-api"])
	wantThrottled(t, "bob after ten failures on the registry API", err, false, time.Minute)

	out := logs.String()
	for _, want := range []string{"sign-in failed", "username=alice", "address=" + addrA.String(), "sign-ins throttled", "username=bob"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"wrong-guess", "dpxp_unknown-token", passwords["alice"], w.secrets["alice-api"], "not-a-token"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows the secret %q", secret)
		}
	}
	clock.Add(time.Minute)
	if _, err := svc.SignIn(ctx, addrA, "alice", passwords["alice"]); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

// detached reads accounts whatever the request's context, so that a test
// can send a sign-in whose context is already done right to the wait for
// a password-check slot.
type detached struct{ Accounts }

func (d detached) UserByUsername(_ context.Context, username string) (store.User, error) {
	return d.Accounts.UserByUsername(context.Background(), username)
}

func (d detached) TokenByHash(_ context.Context, hash []byte) (store.Token, error) {
	return d.Accounts.TokenByHash(context.Background(), hash)
}

// bcrypt checks wait for a free slot; a client that gives up while
// waiting is not checked, and nothing is counted against it.
func TestPasswordChecksAreBounded(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	svc := NewService(detached{w.st}, w.iss, ServiceOptions{Now: fixedClock(t0), PasswordChecks: 1})
	if cap(svc.checks) != 1 {
		t.Fatalf("%d password-check slots, want 1", cap(svc.checks))
	}
	svc.checks <- struct{}{} // a check that does not end
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for range DefaultFailuresPerUser + 1 {
		if _, err := svc.SignIn(gone, addrA, "alice", passwords["alice"]); !errors.Is(err, context.Canceled) {
			t.Fatalf("sign-in while every slot is taken: %v, want context.Canceled", err)
		}
	}
	if err := svc.CheckSignIn("alice", addrA); err != nil {
		t.Errorf("waits that gave up were counted: %v", err)
	}
	<-svc.checks
	if _, err := svc.SignIn(context.Background(), addrA, "alice", passwords["alice"]); err != nil {
		t.Errorf("with a free slot: %v", err)
	}
	if svc := NewService(w.st, w.iss, ServiceOptions{}); cap(svc.checks) < 1 {
		t.Errorf("default password-check slots: %d", cap(svc.checks))
	}
}

func TestAuthorizePasswordChange(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	clock := testclock.New(t0)
	svc := NewService(w.st, w.iss, ServiceOptions{Now: fixedClock(t0), Limiter: NewLimiter(LimiterOptions{Now: clock.Now})})
	alice, bob, nopw := w.users["alice"], w.users["bob"], w.users["nopw"]
	nopwToken := Principal{User: &nopw, Token: &store.Token{Kind: store.TokenPersonal, Scopes: []string{ScopeAPI}}}
	for _, c := range []struct {
		name    string
		p       Principal
		target  store.User
		current string
		want    error // nil: allowed
	}{
		{"an admin's token, anyone's password", w.principal(t, "root-api"), alice, "", nil},
		{"an admin's password sign-in", w.principal(t, "root"), bob, "", nil},
		{"another user's", w.principal(t, "alice-api"), bob, passwords["bob"], oci.ErrDenied},
		{"a group token", w.principal(t, "group-a-guest"), alice, passwords["alice"], oci.ErrDenied},
		{"own, with a token, no current password", w.principal(t, "alice-api"), alice, "", ErrCurrentPassword},
		{"own, with a token, a wrong current password", w.principal(t, "alice-api"), alice, "nope", ErrCurrentPassword},
		{"own, with a token and the current password", w.principal(t, "alice-api"), alice, passwords["alice"], nil},
		{"own, signed in with the password", w.principal(t, "alice"), alice, "", nil},
		{"a first password with a token", nopwToken, nopw, "anything", ErrCurrentPassword},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := svc.AuthorizePasswordChange(ctx, addrA, c.p, c.target, c.current)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("AuthorizePasswordChange = %v, want %v", err, c.want)
			}
		})
	}
	// Wrong current passwords are failed sign-ins: throttled like them.
	p := w.principal(t, "alice-api")
	for i := 1; i < DefaultFailuresPerUser; i++ {
		if err := svc.AuthorizePasswordChange(ctx, addrA, p, alice, "guess"); !errors.Is(err, ErrCurrentPassword) {
			t.Fatalf("guess %d: %v", i+1, err)
		}
	}
	wantThrottled(t, "the right current password after ten wrong ones",
		svc.AuthorizePasswordChange(ctx, addrA, p, alice, passwords["alice"]), false, time.Minute)
	wantThrottled(t, "a sign-in as alice", svc.CheckSignIn("alice", addrB), false, time.Minute)
}

func TestCheckTokenBounds(t *testing.T) {
	t.Parallel()
	hour := t0.Add(time.Hour)
	later, sooner := hour.Add(time.Minute), hour.Add(-time.Minute)
	token := func(expires *time.Time, scopes ...string) Principal {
		return Principal{Token: &store.Token{Kind: store.TokenPersonal, Scopes: scopes, ExpiresAt: expires}, User: &store.User{Username: "alice"}}
	}
	for _, c := range []struct {
		name    string
		creator Principal
		scopes  []string
		expires *time.Time
		says    string // "" means allowed
	}{
		{"password sign-in: no bounds", Principal{User: &store.User{Username: "alice"}}, []string{ScopeAPI}, nil, ""},
		{"a token without expiry, none", token(nil, ScopeAPI), []string{ScopeAPI}, nil, ""},
		{"a token without expiry, some", token(nil, ScopeAPI), []string{ScopeAPI}, &later, ""},
		{"no expiry from an expiring token", token(&hour, ScopeAPI), []string{ScopeReadRegistry}, nil, "pass expiresAt at or before 2030-05-06T08:08:09Z"},
		{"a later expiry", token(&hour, ScopeAPI), []string{ScopeReadRegistry}, &later, "after 2030-05-06T08:08:09Z"},
		{"the same expiry", token(&hour, ScopeAPI), []string{ScopeReadRegistry}, &hour, ""},
		{"a sooner expiry", token(&hour, ScopeAPI), []string{ScopeReadRegistry}, &sooner, ""},
		{"api covers every scope", token(nil, ScopeAPI), ScopeNames(), nil, ""},
		{"read_registry cannot give api", token(nil, ScopeReadRegistry), []string{ScopeAPI, ScopeReadRegistry}, nil, "cannot create a token with api"},
		{"write does not give read", token(nil, ScopeWriteRegistry), []string{ScopeReadRegistry}, nil, "read_registry"},
		{"the same scopes", token(nil, ScopeReadVirtualRegistry, ScopeReadRegistry), []string{ScopeReadRegistry, ScopeReadVirtualRegistry}, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckTokenBounds(c.creator, c.scopes, c.expires)
			switch {
			case c.says == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)):
				t.Errorf("CheckTokenBounds = %v, want a refusal saying %q", err, c.says)
			}
		})
	}
}
