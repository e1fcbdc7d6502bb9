package admin

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// tokenOf renders a token with the names of its owner.
func (s *Service) tokenOf(ctx context.Context, t store.Token) (Token, error) {
	out := Token{
		ID: t.ID, Kind: t.Kind, Name: t.Name, Scopes: append([]string{}, t.Scopes...),
		ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt, CreatedAt: t.CreatedAt,
	}
	if t.UserID != 0 {
		u, err := s.store.UserByID(ctx, t.UserID)
		if err != nil {
			return Token{}, err
		}
		out.Username = u.Username
	}
	if t.GroupID != 0 {
		g, err := s.store.GroupByID(ctx, t.GroupID)
		if err != nil {
			return Token{}, err
		}
		out.GroupPath = g.Path
	}
	switch t.Kind {
	case store.TokenDeploy:
		out.DeployUsername = t.Username
	case store.TokenGroup:
		out.Role = t.Role
	}
	now := s.opts.Now()
	out.Active = t.RevokedAt == nil && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt))
	return out, nil
}

// tokenUser resolves the user whose personal tokens a request is about:
// the named one (an instance admin, or the user themself) or the actor's
// own.
func (s *Service) tokenUser(ctx context.Context, a Actor, username *string, action string) (store.User, error) {
	if username == nil || (a.User != nil && a.User.Username == *username) {
		if a.User == nil {
			return store.User{}, fail(ErrInvalid, "a group access token has no personal tokens; pass username or groupPath")
		}
		return *a.User, nil
	}
	if err := s.requireAdmin(a, action); err != nil {
		return store.User{}, err
	}
	return s.lookupUser(ctx, *username)
}

// Tokens returns the tokens of a group (owner) when groupPath is set, else
// the personal tokens of a user (oneself, or anyone for an instance
// admin; the actor's own when username is nil), newest first.
func (s *Service) Tokens(ctx context.Context, a Actor, username, groupPath *string) ([]Token, error) {
	var toks []store.Token
	switch {
	case username != nil && groupPath != nil:
		return nil, fail(ErrInvalid, "pass username or groupPath, not both")
	case groupPath != nil:
		g, err := s.authorizeGroup(ctx, a, *groupPath, store.RoleOwner, "listing the tokens")
		if err != nil {
			return nil, err
		}
		if toks, err = s.store.TokensOfGroup(ctx, g.ID); err != nil {
			return nil, err
		}
	default:
		u, err := s.tokenUser(ctx, a, username, "listing the tokens of another user")
		if err != nil {
			return nil, err
		}
		if toks, err = s.store.TokensOfUser(ctx, u.ID); err != nil {
			return nil, err
		}
	}
	out := make([]Token, 0, len(toks))
	for i := len(toks) - 1; i >= 0; i-- { // newest first
		t, err := s.tokenOf(ctx, toks[i])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// TokenInput is a new token.
type TokenInput struct {
	Kind TokenKind
	Name string
	// Username names the user of a personal token (nil: the actor).
	Username *string
	// GroupPath names the group of a group access or deploy token.
	GroupPath *string
	Scopes    []string
	ExpiresAt *time.Time
	// Role is a group access token's role (nil: guest).
	Role *Role
	// DeployUsername is a deploy token's username (nil: numbered as
	// GitLab's gitlab+deploy-token-<n>).
	DeployUsername *string
}

// kindWords names token kinds in messages as the API names them.
var kindWords = map[TokenKind]string{TokenPersonal: "personal", TokenGroup: "group_access", TokenDeploy: "deploy"}

// CreateToken creates a token and returns it with its secret, which is
// shown this once and stored only as a hash. A personal token is the
// actor's own (or anyone's for an instance admin); group access and deploy
// tokens need the owner role. A token cannot create one that outlives it
// or has a scope it lacks; deploy tokens cannot have the api scope.
func (s *Service) CreateToken(ctx context.Context, a Actor, in TokenInput) (Token, string, error) {
	t := store.Token{Kind: in.Kind, Name: in.Name, ExpiresAt: in.ExpiresAt}
	switch in.Kind {
	case TokenPersonal:
		if in.GroupPath != nil {
			return Token{}, "", invalid("a personal token belongs to a user: pass username, not groupPath")
		}
		u, err := s.tokenUser(ctx, a, in.Username, "creating a personal token for another user")
		if err != nil {
			return Token{}, "", err
		}
		t.UserID = u.ID
	case TokenGroup, TokenDeploy:
		if in.GroupPath == nil {
			return Token{}, "", invalid("a %s token needs groupPath", kindWords[in.Kind])
		}
		g, err := s.authorizeGroup(ctx, a, *in.GroupPath, store.RoleOwner, "creating tokens")
		if err != nil {
			return Token{}, "", err
		}
		t.GroupID = g.ID
	default:
		return Token{}, "", invalid("unknown token kind %q: use PERSONAL, GROUP_ACCESS or DEPLOY", in.Kind)
	}
	if err := s.tokenInput(ctx, &t, in); err != nil {
		return Token{}, "", err
	}
	if err := auth.CheckTokenBounds(a, t.Scopes, t.ExpiresAt); err != nil {
		return Token{}, "", invalid("%s", err)
	}
	secret, hash := auth.NewTokenSecret(t.Kind)
	t.Hash = hash
	t, err := s.store.CreateToken(ctx, t)
	if err != nil {
		return Token{}, "", err
	}
	out, err := s.tokenOf(ctx, t)
	if err != nil {
		return Token{}, "", err
	}
	s.log.InfoContext(ctx, "token created", "token_id", t.ID, "kind", string(t.Kind), "scopes", strings.Join(t.Scopes, ","), "by", a.Name())
	return out, secret, nil
}

// tokenInput validates a token's input into t.
func (s *Service) tokenInput(ctx context.Context, t *store.Token, in TokenInput) error {
	if err := validateText("token name", in.Name, maxTokenName); err != nil {
		return err
	}
	if err := auth.ValidateScopes(in.Scopes); err != nil {
		return invalid("%s", err)
	}
	for _, sc := range in.Scopes {
		if !slices.Contains(t.Scopes, sc) {
			t.Scopes = append(t.Scopes, sc)
		}
	}
	if t.Kind == store.TokenDeploy && slices.Contains(t.Scopes, auth.ScopeAPI) {
		return invalid("deploy tokens cannot have the api scope: use read_registry (or create a group access token)")
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(s.opts.Now()) {
		return invalid("expiresAt %s is in the past", in.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if in.Role != nil && t.Kind != store.TokenGroup {
		return invalid("role is only for group access tokens")
	}
	if in.DeployUsername != nil && t.Kind != store.TokenDeploy {
		return invalid("deployUsername is only for deploy tokens")
	}
	switch t.Kind {
	case store.TokenGroup:
		t.Role = store.RoleGuest
		if in.Role != nil {
			if !in.Role.Valid() {
				return invalid("unknown role %q: use one of minimal_access, guest, reporter, developer, maintainer, owner", in.Role)
			}
			t.Role = *in.Role
		}
	case store.TokenDeploy:
		if in.DeployUsername != nil {
			if err := validateUsername(*in.DeployUsername); err != nil {
				return invalid("deploy %s", err)
			}
			t.Username = *in.DeployUsername
		} else {
			n, err := s.store.NextTokenNumber(ctx)
			if err != nil {
				s.log.ErrorContext(ctx, "number a deploy token", "err", err)
				return invalid("could not number the deploy token; try again")
			}
			t.Username = "gitlab+deploy-token-" + strconv.FormatInt(n, 10)
		}
	}
	return nil
}

// RevokeToken revokes a token: one's own personal tokens, a group's tokens
// for its owner, any for an instance admin. A token the actor may not
// revoke is answered as an unknown one. already reports that the token
// was revoked before; revoking it again changes nothing.
func (s *Service) RevokeToken(ctx context.Context, a Actor, id int64) (_ Token, already bool, _ error) {
	notFound := fail(ErrNotFound, "token %q not found", strconv.FormatInt(id, 10))
	t, err := s.store.TokenByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, false, notFound
	}
	if err != nil {
		return Token{}, false, err
	}
	switch {
	case a.IsAdmin():
	case t.Kind == store.TokenPersonal:
		if a.User == nil || a.User.ID != t.UserID {
			return Token{}, false, notFound
		}
	default:
		g, err := s.store.GroupByID(ctx, t.GroupID)
		if err != nil {
			return Token{}, false, err
		}
		if _, err := s.authorizeGroup(ctx, a, g.Path, store.RoleOwner, "revoking tokens"); err != nil {
			if errors.Is(err, ErrNotFound) {
				return Token{}, false, notFound
			}
			return Token{}, false, err
		}
	}
	already = t.RevokedAt != nil
	if err := s.store.RevokeToken(ctx, t.ID, s.opts.Now()); err != nil {
		return Token{}, false, err
	}
	if t, err = s.store.TokenByID(ctx, id); err != nil {
		return Token{}, false, err
	}
	out, err := s.tokenOf(ctx, t)
	if err != nil {
		return Token{}, false, err
	}
	if !already {
		s.log.InfoContext(ctx, "token revoked", "token_id", t.ID, "by", a.Name())
	}
	return out, already, nil
}
