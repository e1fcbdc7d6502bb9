package auth

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testoidc"
)

// ciRig is the world with an OIDC issuer, two trusts of it and a service
// whose clock a test moves:
//
//	fixed    aud "https://dproxy.test", group a, guest, ref_protected=true,
//	         project_path=a/*, max lifetime 30 minutes
//	byclaim  aud "claim-aud", group from namespace_path, reporter,
//	         namespace_path=a*
type ciRig struct {
	*world
	oidc  *testoidc.Issuer
	svc   *Service
	iss   *Issuer
	mu    sync.Mutex
	now   time.Time
	fixed store.CITrust
}

const ciAud = "https://dproxy.test"

func newCIRig(t *testing.T) *ciRig {
	t.Helper()
	r := &ciRig{world: newWorld(t), oidc: testoidc.New(t), now: t0}
	clock := func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
	r.iss = NewIssuer(newTestKey(t), IssuerOptions{Now: clock, TTL: time.Hour})
	r.svc = NewService(r.st, r.iss, ServiceOptions{Now: clock, CITrusts: r.st, CIFetchTimeout: 2 * time.Second})
	var err error
	r.fixed, err = r.st.CreateCITrust(t.Context(), store.CITrust{Name: "fixed", Issuer: r.oidc.URL, Audience: ciAud,
		GroupID: r.groups["a"].ID, Role: store.RoleGuest, MaxLifetime: 30 * time.Minute,
		Claims: []store.ClaimRule{{Key: "ref_protected", Glob: "true"}, {Key: "project_path", Glob: "a/*"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.CreateCITrust(t.Context(), store.CITrust{Name: "byclaim", Issuer: r.oidc.URL, Audience: "claim-aud",
		GroupClaim: "namespace_path", Role: store.RoleReporter, MaxLifetime: 2 * time.Hour,
		Claims: []store.ClaimRule{{Key: "namespace_path", Glob: "a*"}}}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *ciRig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

// job is the claims of a job of project a/app on a protected branch.
func (r *ciRig) job(aud string) map[string]any {
	c := r.oidc.Claims("project_path:a/app:ref_type:branch:ref:main", aud, t0, time.Hour)
	c["project_path"] = "a/app"
	c["namespace_path"] = "a/sub"
	c["ref_protected"] = "true"
	return c
}

var ciFrom = netip.MustParseAddr("192.0.2.7")

func TestCISignIn(t *testing.T) {
	t.Parallel()
	r := newCIRig(t)
	ctx := t.Context()
	for _, alg := range []string{testoidc.RS256, testoidc.ES256} {
		t.Run(alg, func(t *testing.T) {
			p, err := r.svc.SignIn(ctx, ciFrom, "anything", r.oidc.Token(alg, r.job(ciAud)))
			if err != nil {
				t.Fatalf("SignIn: %v", err)
			}
			if p.CI == nil || p.Name() != "ci:fixed:project_path:a/app:ref_type:branch:ref:main" || p.CI.GroupID != r.groups["a"].ID {
				t.Fatalf("principal = %+v (%s)", p, p.Name())
			}
			// The trust's 30 minutes end before the token's hour.
			if want := t0.Add(30 * time.Minute); !p.CI.NotAfter.Equal(want) {
				t.Errorf("NotAfter = %v, want %v", p.CI.NotAfter, want)
			}
			if _, err := r.svc.AuthorizePull(ctx, p, "a/sub/deep"); err != nil {
				t.Errorf("pull from a subgroup: %v", err)
			}
			if _, err := r.svc.AuthorizePull(ctx, p, "b"); !errors.Is(err, oci.ErrNameUnknown) {
				t.Errorf("pull from another group: %v, want NAME_UNKNOWN", err)
			}
			tok, _, exp, err := r.iss.Mint(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(t0.Add(30 * time.Minute)) {
				t.Errorf("registry token expires %v, want the trust's bound %v (its own TTL is an hour)", exp, t0.Add(30*time.Minute))
			}
			_, back, err := r.svc.PrincipalFromAccessToken(ctx, tok)
			if err != nil || back.Name() != p.Name() || back.CI.GroupID != p.CI.GroupID {
				t.Errorf("PrincipalFromAccessToken = %+v, %v", back, err)
			}
			refresh, err := r.iss.MintRefresh(p)
			if err != nil {
				t.Fatal(err)
			}
			rp, err := r.svc.PrincipalFromRefreshToken(ctx, refresh)
			if err != nil || !rp.CI.NotAfter.Equal(t0.Add(30*time.Minute)) {
				t.Errorf("refresh: %+v, %v; want the sign-in's end kept", rp, err)
			}
		})
	}

	// A group claim names the group; a registry token ends with the ID
	// token when the trust allows longer.
	c := r.job("claim-aud")
	c["exp"] = t0.Add(10 * time.Minute).Unix()
	p, err := r.svc.SignInToken(ctx, ciFrom, "x", r.oidc.Token(testoidc.ES256, c))
	if err != nil {
		t.Fatalf("Basic sign-in with a group claim: %v", err)
	}
	if p.CI.GroupID != r.groups["a/sub"].ID || p.CI.Trust.Role != store.RoleReporter || !p.CI.NotAfter.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("group-claim principal = %+v", p.CI)
	}
	if _, err := r.svc.AuthorizePull(ctx, p, "a"); !errors.Is(err, oci.ErrNameUnknown) {
		t.Errorf("pull from the parent of the claimed group: %v, want NAME_UNKNOWN", err)
	}
	if _, _, exp, _ := r.iss.Mint(p, nil); !exp.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("registry token expires %v, want the ID token's %v", exp, t0.Add(10*time.Minute))
	}
	if p.HasScope(ScopeAPI) || !p.HasScope(ScopeReadRegistry) {
		t.Error("a CI job must have read_registry and nothing else")
	}

	// Removing the trust ends registry tokens issued under it.
	tok, _, _, _ := r.iss.Mint(p, nil)
	tr, _ := r.st.CITrustByName(ctx, "byclaim")
	if err := r.st.DeleteCITrust(ctx, tr.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.PrincipalFromAccessToken(ctx, tok); !errors.Is(err, oci.ErrUnauthorized) {
		t.Errorf("token of a removed trust: %v, want UNAUTHORIZED", err)
	}
}

func TestCISignInRefusals(t *testing.T) {
	t.Parallel()
	r := newCIRig(t)
	other := testoidc.New(t)
	with := func(k string, v any) map[string]any { c := r.job(ciAud); c[k] = v; return c }
	without := func(k string) map[string]any { c := r.job(ciAud); delete(c, k); return c }
	leeway := 60 * time.Second // as documented, not CILeeway, so a change shows
	tests := []struct {
		name  string
		token string
		want  string // in the error; "" means accepted
	}{
		{"accepted", r.oidc.Token(testoidc.RS256, r.job(ciAud)), ""},
		{"unknown issuer", other.Token(testoidc.RS256, other.Claims("s", ciAud, t0, time.Hour)), "no ci-trust for issuer " + other.URL},
		{"another audience", r.oidc.Token(testoidc.RS256, with("aud", "https://elsewhere")), `audience (aud) is not "https://dproxy.test"`},
		{"audience list", r.oidc.Token(testoidc.RS256, with("aud", []string{"x", ciAud})), ""},
		{"expired", r.oidc.Token(testoidc.RS256, with("exp", t0.Add(-leeway-time.Second).Unix())), "expired at"},
		{"expired within leeway", r.oidc.Token(testoidc.RS256, with("exp", t0.Add(-leeway+time.Second).Unix())), ""},
		{"no expiry", r.oidc.Token(testoidc.RS256, without("exp")), "no expiry (exp)"},
		{"not yet valid", r.oidc.Token(testoidc.RS256, with("nbf", t0.Add(leeway+time.Second).Unix())), "(nbf)"},
		{"nbf within leeway", r.oidc.Token(testoidc.RS256, with("nbf", t0.Add(leeway-time.Second).Unix())), ""},
		{"issued in the future", r.oidc.Token(testoidc.RS256, with("iat", t0.Add(leeway+time.Second).Unix())), "(iat)"},
		{"bad signature", r.oidc.ForgedToken(r.oidc.KeyID(testoidc.ES256), r.job(ciAud)), "bad signature"},
		{"unknown key", r.oidc.ForgedToken("nobody", r.job(ciAud)), `no signing key "nobody"`},
		{"claim not matching", r.oidc.Token(testoidc.RS256, with("ref_protected", "false")), `claim ref_protected is "false", which does not match "true"`},
		{"boolean claim", r.oidc.Token(testoidc.RS256, with("ref_protected", true)), ""},
		{"claim missing", r.oidc.Token(testoidc.RS256, without("ref_protected")), "claim ref_protected is missing"},
		{"glob not matching", r.oidc.Token(testoidc.RS256, with("project_path", "b/app")), `claim project_path is "b/app"`},
		{"no subject", r.oidc.Token(testoidc.RS256, without("sub")), "no subject (sub)"},
		{"group claim: unknown group", func() string {
			c := r.job("claim-aud")
			c["namespace_path"] = "a-missing"
			return r.oidc.Token(testoidc.RS256, c)
		}(), "names group a-missing, which does not exist"},
		{"group claim: outside the rules", func() string {
			c := r.job("claim-aud")
			c["namespace_path"] = "b"
			return r.oidc.Token(testoidc.RS256, c)
		}(), `claim namespace_path is "b", which does not match "a*"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case its own name and address, so none is throttled.
			from := netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)})
			p, err := r.svc.SignIn(t.Context(), from, "u"+strconv.Itoa(i), tt.token)
			if tt.want == "" {
				if err != nil || p.CI == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, oci.ErrUnauthorized) {
				t.Fatalf("err = %v, want UNAUTHORIZED", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.token[:20]) || strings.Contains(err.Error(), strings.Split(tt.token, ".")[2][:16]) {
				t.Errorf("the error echoes the token: %q", err)
			}
		})
	}
}

func TestCIKeyRotation(t *testing.T) {
	t.Parallel()
	r := newCIRig(t)
	ctx := t.Context()
	if _, err := r.svc.SignIn(ctx, ciFrom, "u", r.oidc.Token(testoidc.RS256, r.job(ciAud))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.SignIn(ctx, ciFrom, "u", r.oidc.Token(testoidc.ES256, r.job(ciAud))); err != nil {
		t.Fatal(err)
	}
	if n := r.oidc.JWKSFetches(); n != 1 {
		t.Fatalf("key set fetched %d times for two tokens of known keys, want 1 (cached)", n)
	}
	// A new key is fetched once it signs, even within 30 s of the last fetch.
	r.advance(31 * time.Second)
	r.oidc.Rotate()
	if _, err := r.svc.SignIn(ctx, ciFrom, "u", r.oidc.Token(testoidc.ES256, r.job(ciAud))); err != nil {
		t.Fatalf("token of a rotated key: %v", err)
	}
	if n := r.oidc.JWKSFetches(); n != 2 {
		t.Fatalf("key set fetched %d times after a rotation, want 2", n)
	}
	// Unknown key ids do not refetch more than every 30 s.
	for range 3 {
		if _, err := r.svc.SignIn(ctx, ciFrom, "u", r.oidc.ForgedToken("unknown", r.job(ciAud))); !errors.Is(err, oci.ErrUnauthorized) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if n := r.oidc.JWKSFetches(); n != 2 {
		t.Errorf("key set fetched %d times for unknown key ids within 30 s of the last fetch, want still 2", n)
	}
	r.advance(30 * time.Second)
	_, _ = r.svc.SignIn(ctx, ciFrom, "u", r.oidc.ForgedToken("unknown", r.job(ciAud)))
	if n := r.oidc.JWKSFetches(); n != 3 {
		t.Errorf("key set fetched %d times 30 s later, want 3", n)
	}
}

func TestCIIssuerUnreachable(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	o := testoidc.New(t)
	svc := NewService(w.st, w.iss, ServiceOptions{Now: fixedClock(t0), CITrusts: w.st, CIFetchTimeout: 100 * time.Millisecond})
	if _, err := w.st.CreateCITrust(t.Context(), store.CITrust{Name: "x", Issuer: o.URL, Audience: ciAud, GroupID: w.groups["a"].ID, Role: store.RoleGuest}); err != nil {
		t.Fatal(err)
	}
	o.Hang(true)
	_, err := svc.SignIn(t.Context(), ciFrom, "u", o.Token(testoidc.RS256, o.Claims("s", ciAud, t0, time.Hour)))
	if !errors.Is(err, oci.ErrUnavailable) || !strings.Contains(err.Error(), "cannot fetch the signing keys of ID token issuer "+o.URL) {
		t.Fatalf("hanging issuer: %v, want UNAVAILABLE naming the issuer", err)
	}
}

func TestMatchGlob(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"true", "true", true}, {"true", "truex", false}, {"*", "", true}, {"team-*", "team-a/b", true},
		{"team-*", "xteam-a", false}, {"*-prod", "a-prod", true}, {"*-prod", "a-prod2", false},
		{"a*b*c", "aXbYc", true}, {"a*b*c", "acb", false}, {"a**", "a", true}, {"ab*ba", "aba", false},
	} {
		if got := MatchGlob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
