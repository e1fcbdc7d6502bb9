package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/app"
	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
)

// passwordUser creates a user who signs in with pw and returns their id.
func (e *env) passwordUser(username, pw string) int64 {
	e.t.Helper()
	hash, err := auth.HashPassword(pw)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := e.app.Store.CreateUser(context.Background(), store.User{Username: username, PasswordHash: hash})
	if err != nil {
		e.t.Fatalf("create user %s: %v", username, err)
	}
	return u.ID
}

// personalToken gives a user a personal token and returns its secret.
func (e *env) personalToken(userID int64, expires *time.Time, scopes ...string) string {
	e.t.Helper()
	secret, hash := auth.NewTokenSecret(store.TokenPersonal)
	if _, err := e.app.Store.CreateToken(context.Background(), store.Token{
		Kind: store.TokenPersonal, Name: "t", UserID: userID, Scopes: scopes, Hash: hash, ExpiresAt: expires,
	}); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// tokenAnswer is a token endpoint answer: its status, body and, on 200,
// the tokens it carried.
type tokenAnswer struct {
	status  int
	header  http.Header
	body    []byte
	access  string
	refresh string
}

// postToken posts a form to the token endpoint.
func (e *env) postToken(form url.Values, hdr ...string) tokenAnswer {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/jwt/auth", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.tokenRequest(http.DefaultClient, req)
}

// getToken signs in at the token endpoint with GET and Basic credentials.
func (e *env) getToken(c *http.Client, user, secret string, hdr ...string) tokenAnswer {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/jwt/auth?service=dependency_proxy", nil)
	req.SetBasicAuth(user, secret)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.tokenRequest(c, req)
}

func (e *env) tokenRequest(c *http.Client, req *http.Request) tokenAnswer {
	e.t.Helper()
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s /jwt/auth: %v", req.Method, err)
	}
	defer res.Body.Close()
	a := tokenAnswer{status: res.StatusCode, header: res.Header}
	a.body, _ = io.ReadAll(res.Body)
	if a.status == http.StatusOK {
		var m struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.Unmarshal(a.body, &m); err != nil {
			e.t.Fatalf("token answer %s: %v", a.body, err)
		}
		a.access, a.refresh = m.AccessToken, m.RefreshToken
	}
	return a
}

// offline signs in with a password and returns an access and a refresh token.
func (e *env) offline(user, pw string) (access, refresh string) {
	e.t.Helper()
	a := e.postToken(url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw},
		"service": {"dependency_proxy"}, "access_type": {"offline"}, "client_id": {"test"}})
	if a.status != http.StatusOK || a.refresh == "" {
		e.t.Fatalf("sign in as %s: %d %s", user, a.status, a.body)
	}
	return a.access, a.refresh
}

func (e *env) useRefresh(refresh string) tokenAnswer {
	e.t.Helper()
	return e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {"dependency_proxy"}})
}

// gqlOK runs an operation that must succeed, failing t (not e's test).
func gqlOK(t *testing.T, e *env, token, query string, vars map[string]any, v any) {
	t.Helper()
	r := e.gql(token, query, vars)
	if r.status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("GraphQL %s: status %d, errors: %s", clipQuery(query), r.status, r.messages())
	}
	if v != nil {
		if err := json.Unmarshal(r.Data, v); err != nil {
			t.Fatalf("decode data %s: %v", r.Data, err)
		}
	}
}

// wantStatus checks an answer's status, and its OCI error code when it
// is an error.
func wantStatus(t *testing.T, what string, status int, body []byte, want int, code string) {
	t.Helper()
	if status != want {
		t.Fatalf("%s: status %d, want %d: %s", what, status, want, body)
	}
	if code != "" {
		if got, msg := ociError(t, body); got != code {
			t.Fatalf("%s: code %s (%s), want %s", what, got, msg, code)
		}
	}
}

// Changing a password, blocking or deleting a user ends every session the
// user had: refresh tokens and registry tokens minted before answer 401 on
// their next use, while a fresh sign-in works.
func TestCredentialChangesEndSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	admin := e.adminToken()

	cases := []struct {
		name   string
		change func(t *testing.T, user string)
		after  func(t *testing.T, user string) // what still works, or not, afterwards
	}{
		{"password change", func(t *testing.T, user string) {
			var r struct{ UserUpdate struct{ Errors []string } }
			gqlOK(t, e, admin, `mutation($u: String!) { userUpdate(input: {username: $u, password: "new-password-2"}) { errors } }`, map[string]any{"u": user}, &r)
			if len(r.UserUpdate.Errors) > 0 {
				t.Fatalf("userUpdate: %v", r.UserUpdate.Errors)
			}
		}, func(t *testing.T, user string) {
			a := e.getToken(http.DefaultClient, user, "old-password-1")
			wantStatus(t, "the old password", a.status, a.body, 401, "UNAUTHORIZED")
			access, refresh := e.offline(user, "new-password-2")
			if a := e.useRefresh(refresh); a.status != 200 {
				t.Errorf("a refresh token minted after the change: %d %s", a.status, a.body)
			}
			if res, body := e.do(http.MethodGet, "/v2/", access); res.StatusCode != 200 {
				t.Errorf("an access token minted after the change: %d %s", res.StatusCode, body)
			}
		}},
		{"block", func(t *testing.T, user string) {
			var r struct{ UserUpdate struct{ Errors []string } }
			gqlOK(t, e, admin, `mutation($u: String!) { userUpdate(input: {username: $u, blocked: true}) { errors } }`, map[string]any{"u": user}, &r)
			if len(r.UserUpdate.Errors) > 0 {
				t.Fatalf("userUpdate: %v", r.UserUpdate.Errors)
			}
		}, func(t *testing.T, user string) {
			a := e.getToken(http.DefaultClient, user, "old-password-1")
			wantStatus(t, "signing in while blocked", a.status, a.body, 401, "UNAUTHORIZED")
			u, err := e.app.Store.UserByUsername(context.Background(), user)
			if err != nil {
				t.Fatal(err)
			}
			api := e.personalToken(u.ID, nil, auth.ScopeAPI)
			if r := e.gql(api, `{ currentUser { username } }`, nil); r.status != http.StatusUnauthorized || !strings.Contains(r.messages(), "blocked") {
				t.Errorf("the admin API with a blocked user's token: %d %q, want 401 saying blocked", r.status, r.messages())
			}
			var r struct{ UserUpdate struct{ Errors []string } }
			gqlOK(t, e, admin, `mutation($u: String!) { userUpdate(input: {username: $u, blocked: false}) { errors } }`, map[string]any{"u": user}, &r)
			if a := e.getToken(http.DefaultClient, user, "old-password-1"); a.status != 200 {
				t.Errorf("signing in after unblocking: %d %s", a.status, a.body)
			}
		}},
		{"delete", func(t *testing.T, user string) {
			var r struct{ UserDelete struct{ Errors []string } }
			gqlOK(t, e, admin, `mutation($u: String!) { userDelete(input: {username: $u}) { errors } }`, map[string]any{"u": user}, &r)
			if len(r.UserDelete.Errors) > 0 {
				t.Fatalf("userDelete: %v", r.UserDelete.Errors)
			}
		}, nil},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user := "user" + strconv.Itoa(i)
			id := e.passwordUser(user, "old-password-1")
			token := e.personalToken(id, nil, auth.ScopeReadRegistry)
			access, refresh := e.offline(user, "old-password-1")
			tokenJWT := e.getToken(http.DefaultClient, user, token)
			if tokenJWT.status != 200 {
				t.Fatalf("sign in with a personal token: %d %s", tokenJWT.status, tokenJWT.body)
			}
			// Both work before, and the server remembers them.
			if a := e.useRefresh(refresh); a.status != 200 {
				t.Fatalf("refresh before the change: %d %s", a.status, a.body)
			}
			for _, tok := range []string{access, tokenJWT.access} {
				if res, body := e.do(http.MethodGet, "/v2/", tok); res.StatusCode != 200 {
					t.Fatalf("access token before the change: %d %s", res.StatusCode, body)
				}
			}

			c.change(t, user)

			a := e.useRefresh(refresh)
			wantStatus(t, "the refresh token after the change", a.status, a.body, 401, "UNAUTHORIZED")
			res, body := e.do(http.MethodGet, "/v2/", access)
			wantStatus(t, "the access token after the change", res.StatusCode, body, 401, "UNAUTHORIZED")
			res, body = e.do(http.MethodGet, "/v2/", tokenJWT.access)
			wantStatus(t, "the personal token's access token after the change", res.StatusCode, body, 401, "UNAUTHORIZED")
			if c.after != nil {
				c.after(t, user)
			}
			// Earlier tokens stay dead, whatever happened since: also once a
			// token minted after the change was used and remembered.
			a = e.useRefresh(refresh)
			wantStatus(t, "the refresh token at the end", a.status, a.body, 401, "UNAUTHORIZED")
			res, body = e.do(http.MethodGet, "/v2/", access)
			wantStatus(t, "the access token at the end", res.StatusCode, body, 401, "UNAUTHORIZED")
		})
	}
}

type tokenCreated struct {
	TokenCreate struct {
		Token *struct {
			ID        string
			ExpiresAt *time.Time
		}
		Secret *string
		Errors []string
	}
}

// A token cannot make a token that outlives it or that has scopes it
// lacks.
func TestTokensCannotOutliveOrWidenTheirCreator(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	ctx := context.Background()
	st := e.app.Store
	hour := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	alice := e.passwordUser("alice", "alice-password-1")
	if err := st.SetMember(ctx, e.groupID("acme"), alice, store.RoleOwner); err != nil {
		t.Fatal(err)
	}
	shortLived := e.personalToken(alice, &hour, auth.ScopeAPI)
	pullOnly := e.personalToken(alice, nil, auth.ScopeReadRegistry)
	gsecret, ghash := auth.NewTokenSecret(store.TokenGroup)
	if _, err := st.CreateToken(ctx, store.Token{Kind: store.TokenGroup, Name: "g", GroupID: e.groupID("acme"),
		Role: store.RoleOwner, Scopes: []string{auth.ScopeAPI}, Hash: ghash, ExpiresAt: &hour}); err != nil {
		t.Fatal(err)
	}
	tokenCount := func() int {
		t.Helper()
		mine, err := st.TokensOfUser(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		group, err := st.TokensOfGroup(ctx, e.groupID("acme"))
		if err != nil {
			t.Fatal(err)
		}
		return len(mine) + len(group)
	}
	create := `mutation($in: TokenCreateInput!) { tokenCreate(input: $in) { token { id expiresAt } secret errors } }`
	personal := func(scopes []string, expires *time.Time) map[string]any {
		in := map[string]any{"kind": "PERSONAL", "name": "child", "scopes": scopes}
		if expires != nil {
			in["expiresAt"] = expires.Format(time.RFC3339)
		}
		return map[string]any{"in": in}
	}

	for _, c := range []struct {
		name, token string
		vars        map[string]any
		says        string
	}{
		{"no expiry from a token that expires", shortLived, personal([]string{auth.ScopeReadRegistry}, nil), "expiresAt"},
		{"a later expiry", shortLived, personal([]string{auth.ScopeReadRegistry}, ptr(hour.Add(time.Hour))), hour.Format(time.RFC3339)},
		{"a group token's deploy token without expiry", gsecret,
			map[string]any{"in": map[string]any{"kind": "DEPLOY", "name": "d", "scopes": []string{"read_registry"}, "groupPath": "acme"}}, "expiresAt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := tokenCount()
			r := e.gql(c.token, create, c.vars)
			var out tokenCreated
			json.Unmarshal(r.Data, &out)
			if out.TokenCreate.Secret != nil || len(out.TokenCreate.Errors) == 0 && len(r.Errors) == 0 {
				t.Fatalf("created a token that outlives its creator: %+v", out.TokenCreate)
			}
			if msg := strings.Join(out.TokenCreate.Errors, "; ") + r.messages(); !strings.Contains(msg, c.says) {
				t.Errorf("refusal %q does not mention %q", msg, c.says)
			}
			if n := tokenCount(); n != before {
				t.Errorf("%d tokens after a refusal, want %d", n, before)
			}
		})
	}

	t.Run("a token with fewer scopes cannot create one with api", func(t *testing.T) {
		before := tokenCount()
		r := e.gql(pullOnly, create, personal([]string{auth.ScopeAPI}, nil))
		var out tokenCreated
		json.Unmarshal(r.Data, &out)
		if out.TokenCreate.Secret != nil || r.status == 200 && len(out.TokenCreate.Errors) == 0 {
			t.Fatalf("a read_registry token created an api token: %d %+v", r.status, out.TokenCreate)
		}
		if n := tokenCount(); n != before {
			t.Errorf("%d tokens after a refusal, want %d", n, before)
		}
	})

	t.Run("within the creator's lifetime and scopes", func(t *testing.T) {
		var out tokenCreated
		gqlOK(t, e, shortLived, create, personal([]string{auth.ScopeReadRegistry}, ptr(hour.Add(-30*time.Minute))), &out)
		if out.TokenCreate.Secret == nil || len(out.TokenCreate.Errors) > 0 {
			t.Fatalf("tokenCreate within bounds: %+v", out.TokenCreate)
		}
		gqlOK(t, e, shortLived, create, personal([]string{auth.ScopeAPI}, &hour), &out)
		if out.TokenCreate.Secret == nil {
			t.Fatalf("tokenCreate expiring with its creator: %+v", out.TokenCreate)
		}
		// The initial admin token never expires, so neither need its tokens.
		gqlOK(t, e, e.adminToken(), create, map[string]any{"in": map[string]any{"kind": "PERSONAL", "name": "forever",
			"scopes": []string{"read_registry"}, "username": "alice"}}, &out)
		if out.TokenCreate.Secret == nil || out.TokenCreate.Token.ExpiresAt != nil {
			t.Fatalf("admin token creating a token without expiry: %+v", out.TokenCreate)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// Changing one's own password with a token needs the current password;
// an instance admin may set anyone's.
func TestPasswordChangeWithTokenNeedsCurrentPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	alice := e.passwordUser("alice", "alice-password-1")
	tok := e.personalToken(alice, nil, auth.ScopeAPI)
	update := `mutation($in: UserUpdateInput!) { userUpdate(input: $in) { user { username } errors } }`
	type payload struct {
		UserUpdate struct {
			User   *struct{ Username string }
			Errors []string
		}
	}
	signsIn := func(t *testing.T, pw string) bool {
		t.Helper()
		return e.getToken(http.DefaultClient, "alice", pw).status == 200
	}

	for _, c := range []struct {
		name string
		in   map[string]any
		says string
	}{
		{"without the current password", map[string]any{"username": "alice", "password": "stolen-session-1"}, "currentPassword"},
		{"with a wrong current password", map[string]any{"username": "alice", "password": "stolen-session-1", "currentPassword": "guess-1"}, "current password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.gql(tok, update, map[string]any{"in": c.in})
			var out payload
			json.Unmarshal(r.Data, &out)
			msg := strings.Join(out.UserUpdate.Errors, "; ") + r.messages()
			if out.UserUpdate.User != nil || msg == "" {
				t.Fatalf("password changed %s: %+v", c.name, out.UserUpdate)
			}
			if !strings.Contains(msg, c.says) {
				t.Errorf("refusal %q does not mention %q", msg, c.says)
			}
			if signsIn(t, "stolen-session-1") || !signsIn(t, "alice-password-1") {
				t.Errorf("the password changed after a refusal")
			}
		})
	}

	t.Run("with the current password", func(t *testing.T) {
		var out payload
		gqlOK(t, e, tok, update, map[string]any{"in": map[string]any{"username": "alice", "password": "alice-password-2", "currentPassword": "alice-password-1"}}, &out)
		if out.UserUpdate.User == nil || len(out.UserUpdate.Errors) > 0 {
			t.Fatalf("userUpdate: %+v", out.UserUpdate)
		}
		if !signsIn(t, "alice-password-2") {
			t.Errorf("the new password does not sign in")
		}
	})

	t.Run("an instance admin needs none", func(t *testing.T) {
		var out payload
		gqlOK(t, e, e.adminToken(), update, map[string]any{"in": map[string]any{"username": "alice", "password": "reset-by-admin-3"}}, &out)
		if out.UserUpdate.User == nil || len(out.UserUpdate.Errors) > 0 {
			t.Fatalf("userUpdate by an admin: %+v", out.UserUpdate)
		}
		if !signsIn(t, "reset-by-admin-3") {
			t.Errorf("the password an admin set does not sign in")
		}
	})
}

// clientFrom is an HTTP client whose connections come from a loopback
// address of its own, so the server sees another client address.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// wantThrottled checks a 429 TOOMANYREQUESTS answer with a Retry-After of
// at most a minute.
func wantThrottled(t *testing.T, what string, status int, header http.Header, body []byte) {
	t.Helper()
	wantStatus(t, what, status, body, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	ra, err := strconv.Atoi(header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Errorf("%s: Retry-After %q, want 1 to 60 seconds", what, header.Get("Retry-After"))
	}
}

// Past ten failed sign-ins a minute for one username, every sign-in as
// that user answers 429 until the window passes, the right password too.
func TestSignInThrottlingPerUsername(t *testing.T) {
	t.Parallel()
	clock := testclock.New(time.Now())
	e := newEnv(t, envOptions{appOptions: []app.Option{app.WithClock(clock.Now)}})
	id := e.passwordUser("erin", "erin-password-1")
	token := e.personalToken(id, nil, auth.ScopeReadRegistry)
	e.passwordUser("frank", "frank-password-1")

	for i := range 10 {
		wrong := "wrong-guess-" + strconv.Itoa(i)
		var a tokenAnswer
		if i%2 == 0 {
			a = e.getToken(http.DefaultClient, "erin", wrong)
		} else {
			a = e.postToken(url.Values{"grant_type": {"password"}, "username": {"erin"}, "password": {wrong}})
		}
		wantStatus(t, "wrong password "+strconv.Itoa(i+1), a.status, a.body, 401, "UNAUTHORIZED")
		clock.Add(time.Second)
	}
	a := e.getToken(http.DefaultClient, "erin", "wrong-guess-10")
	wantThrottled(t, "the 11th wrong password", a.status, a.header, a.body)
	a = e.getToken(http.DefaultClient, "erin", "erin-password-1")
	wantThrottled(t, "the right password while throttled (GET)", a.status, a.header, a.body)
	a = e.postToken(url.Values{"grant_type": {"password"}, "username": {"erin"}, "password": {"erin-password-1"}})
	wantThrottled(t, "the right password while throttled (POST)", a.status, a.header, a.body)
	res, body := e.do(http.MethodGet, "/v2/", "", "Authorization", basic("erin", token))
	wantThrottled(t, "erin's token as Basic credentials on /v2/", res.StatusCode, res.Header, body)

	// Another user at the same address is not throttled.
	if a := e.getToken(http.DefaultClient, "frank", "frank-password-1"); a.status != 200 {
		t.Errorf("another user: %d %s", a.status, a.body)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "erin") || !strings.Contains(logs, "127.0.0.1") {
		t.Errorf("the log does not name the username and address of failed sign-ins:\n%s", logs)
	}
	for _, pw := range []string{"wrong-guess-3", "erin-password-1"} {
		if strings.Contains(logs, pw) {
			t.Errorf("the log shows a password %q", pw)
		}
	}

	// The window slides: a minute after the first failure, one more try.
	clock.Add(51 * time.Second)
	if a := e.getToken(http.DefaultClient, "erin", "erin-password-1"); a.status != 200 {
		t.Fatalf("after the window: %d %s", a.status, a.body)
	}
	if res, body := e.do(http.MethodGet, "/v2/", "", "Authorization", basic("erin", token)); res.StatusCode != 200 {
		t.Errorf("Basic credentials on /v2/ after the window: %d %s", res.StatusCode, body)
	}
}

// Past thirty failed sign-ins a minute from one address, over any
// usernames, every sign-in from it answers 429; other addresses are not
// affected, and X-Forwarded-For is not believed by default.
func TestSignInThrottlingPerAddress(t *testing.T) {
	t.Parallel()
	clock := testclock.New(time.Now())
	e := newEnv(t, envOptions{appOptions: []app.Option{app.WithClock(clock.Now)}})
	e.passwordUser("gina", "gina-password-1")

	for i := range 30 {
		user := "nobody" + strconv.Itoa(i)
		var status int
		var body []byte
		switch i % 3 {
		case 0:
			a := e.getToken(http.DefaultClient, user, "guess")
			status, body = a.status, a.body
		case 1:
			a := e.postToken(url.Values{"grant_type": {"password"}, "username": {user}, "password": {"guess"}})
			status, body = a.status, a.body
		case 2:
			var res *http.Response
			res, body = e.do(http.MethodGet, "/v2/", "", "Authorization", basic(user, "dpxp_"+strings.Repeat("x", 43)))
			status = res.StatusCode
		}
		wantStatus(t, "failure "+strconv.Itoa(i+1), status, body, 401, "UNAUTHORIZED")
	}
	a := e.getToken(http.DefaultClient, "nobody-else", "guess")
	wantThrottled(t, "the 31st failure", a.status, a.header, a.body)
	a = e.getToken(http.DefaultClient, "gina", "gina-password-1")
	wantThrottled(t, "the right password from the throttled address", a.status, a.header, a.body)
	a = e.getToken(http.DefaultClient, "gina", "gina-password-1", "X-Forwarded-For", "203.0.113.9")
	wantThrottled(t, "a forged X-Forwarded-For", a.status, a.header, a.body)

	if a := e.getToken(clientFrom("127.0.0.2"), "gina", "gina-password-1"); a.status != 200 {
		t.Errorf("another address: %d %s", a.status, a.body)
	}
	clock.Add(time.Minute + time.Second)
	if a := e.getToken(http.DefaultClient, "gina", "gina-password-1"); a.status != 200 {
		t.Errorf("after the window: %d %s", a.status, a.body)
	}
}

// Behind a reverse proxy the operator trusts, each client counts under
// its X-Forwarded-For address, so one client's failures do not lock the
// others out.
func TestSignInThrottlingBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	clock := testclock.New(time.Now())
	e := newEnv(t, envOptions{appOptions: []app.Option{app.WithClock(clock.Now)},
		configure: func(c *config.Config) { c.TrustedProxies = "127.0.0.1/32" }})
	e.passwordUser("gina", "gina-password-1")
	for i := range 30 {
		// Unknown tokens as Basic credentials on /v2/: failures that cost
		// no bcrypt.
		user, bogus := "nobody"+strconv.Itoa(i), "dpxp_"+strings.Repeat("x", 43)
		res, body := e.do(http.MethodGet, "/v2/", "", "Authorization", basic(user, bogus), "X-Forwarded-For", "198.51.100.1, 203.0.113.7")
		wantStatus(t, "failure "+strconv.Itoa(i+1), res.StatusCode, body, 401, "UNAUTHORIZED")
	}
	a := e.getToken(http.DefaultClient, "gina", "gina-password-1", "X-Forwarded-For", "203.0.113.7")
	wantThrottled(t, "the client that failed", a.status, a.header, a.body)
	// Another left-hand hop is the client's own claim and changes nothing.
	a = e.getToken(http.DefaultClient, "gina", "gina-password-1", "X-Forwarded-For", "198.51.100.2, 203.0.113.7")
	wantThrottled(t, "the client that failed, with a forged hop", a.status, a.header, a.body)
	for _, xff := range []string{"203.0.113.8", ""} {
		if a := e.getToken(http.DefaultClient, "gina", "gina-password-1", "X-Forwarded-For", xff); a.status != 200 {
			t.Errorf("another client (X-Forwarded-For %q): %d %s", xff, a.status, a.body)
		}
	}
}
