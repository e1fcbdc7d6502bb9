package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/oci"
)

// tokenResponse is the Docker v2 / OAuth2 token answer.
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// token implements the Docker v2 token endpoint: GET with Basic auth
// (optionally offline_token=true for a refresh token), and the OAuth2 POST
// forms grant_type=password and grant_type=refresh_token. The access it
// grants is what was requested intersected with what the principal may do.
func (h *Handler) token(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	from := h.clientAddr(r)
	var (
		p       auth.Principal
		scopes  []string
		refresh bool
		err     error
	)
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		scopes = q["scope"]
		user, pass, ok := r.BasicAuth()
		if !ok {
			// Anonymous: served only for groups that allow anonymous pulls.
			p = auth.AnonymousPrincipal
			break
		}
		if p, err = h.auth.SignIn(ctx, from, user, pass); err != nil {
			return err
		}
		refresh = q.Get("offline_token") == "true"
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			return fmt.Errorf("%w: read token request form: %v", oci.ErrUnauthorized, err)
		}
		switch gt := r.PostForm.Get("grant_type"); gt {
		case "password":
			if p, err = h.auth.SignIn(ctx, from, r.PostForm.Get("username"), r.PostForm.Get("password")); err != nil {
				return err
			}
			refresh = r.PostForm.Get("access_type") == "offline"
		case "refresh_token":
			// A refresh token is signed: it cannot be guessed, and checking
			// one costs no bcrypt, so it is not throttled.
			if p, err = h.auth.PrincipalFromRefreshToken(ctx, r.PostForm.Get("refresh_token")); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: unsupported grant_type %q; use password or refresh_token", oci.ErrUnauthorized, clipText(gt))
		}
		scopes = r.PostForm["scope"]
	default:
		return fmt.Errorf("%w: %s on the token endpoint; use GET or POST", oci.ErrUnsupported, r.Method)
	}

	access := h.grant(r, p, scopes)
	if p.Anonymous && len(access) == 0 {
		return fmt.Errorf("%w: send a username and a password or token with Basic authentication (docker login %s); anonymous pulls work only from a group whose owner allowed them", oci.ErrUnauthorized, hostOf(h.realm))
	}
	tok, issued, expires, err := h.issuer.Mint(p, access)
	if err != nil {
		return fmt.Errorf("mint token: %w", err)
	}
	resp := tokenResponse{
		Token: tok, AccessToken: tok,
		ExpiresIn: int(expires.Sub(issued) / time.Second),
		IssuedAt:  issued.UTC().Format(time.RFC3339),
	}
	if refresh {
		if resp.RefreshToken, err = h.issuer.MintRefresh(p); err != nil {
			return fmt.Errorf("mint refresh token: %w", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(resp)
}

// grant returns the access entries the principal gets for the requested
// scopes. A scope parameter may hold several space-separated scopes.
func (h *Handler) grant(r *http.Request, p auth.Principal, scopes []string) []auth.Access {
	var access []auth.Access
	for _, param := range scopes {
		for _, s := range strings.Fields(param) {
			a, err := auth.ParseScope(s)
			if err != nil {
				h.log.DebugContext(r.Context(), "ignoring malformed token scope", "scope", clipText(s), "err", err)
				continue
			}
			if actions := h.auth.GrantedActions(r.Context(), p, s); len(actions) > 0 {
				access = append(access, auth.Access{Type: a.Type, Name: a.Name, Actions: actions})
			}
		}
	}
	return access
}

func clipText(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
