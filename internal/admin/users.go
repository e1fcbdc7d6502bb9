package admin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// userNotFound is the answer for an unknown user and one the actor may not
// see.
func userNotFound(username string) error { return fail(ErrNotFound, "user %q not found", username) }

// lookupUser loads a user by name.
func (s *Service) lookupUser(ctx context.Context, username string) (store.User, error) {
	u, err := s.store.UserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, userNotFound(username)
	}
	return u, err
}

// Users returns up to limit users (0: all) by username, after the
// username after when it is not "" (instance admin).
func (s *Service) Users(ctx context.Context, a Actor, after string, limit int) ([]User, error) {
	if err := s.requireAdmin(a, "listing users"); err != nil {
		return nil, err
	}
	users, err := s.store.Users(ctx)
	if err != nil {
		return nil, err
	}
	if after != "" {
		i, _ := slices.BinarySearchFunc(users, after, func(u store.User, s string) int { return strings.Compare(u.Username, s) })
		for i < len(users) && users[i].Username <= after {
			i++
		}
		users = users[i:]
	}
	if limit > 0 {
		users = users[:min(len(users), limit)]
	}
	out := make([]User, len(users))
	for i, u := range users {
		out[i] = userOf(u)
	}
	return out, nil
}

// User returns a user: any for an instance admin, else only oneself.
func (s *Service) User(ctx context.Context, a Actor, username string) (User, error) {
	if !a.IsAdmin() && (a.User == nil || a.User.Username != username) {
		return User{}, userNotFound(username)
	}
	u, err := s.lookupUser(ctx, username)
	if err != nil {
		return User{}, err
	}
	return userOf(u), nil
}

// UserInput is a new user. Password "" means password sign-in is
// disabled until one is set.
type UserInput struct {
	Username string
	Password string
	Admin    bool
}

// CreateUser creates a user (instance admin).
func (s *Service) CreateUser(ctx context.Context, a Actor, in UserInput) (User, error) {
	if err := s.requireAdmin(a, "creating users"); err != nil {
		return User{}, err
	}
	if err := validateUsername(in.Username); err != nil {
		return User{}, err
	}
	u := store.User{Username: in.Username, Admin: in.Admin}
	if in.Password != "" {
		if err := validatePassword(in.Password); err != nil {
			return User{}, err
		}
		hash, err := auth.HashPassword(in.Password)
		if err != nil {
			return User{}, err
		}
		u.PasswordHash = hash
	}
	u, err := s.store.CreateUser(ctx, u)
	if errors.Is(err, store.ErrConflict) {
		return User{}, refuse(ErrConflict, "username %q is taken", in.Username)
	}
	if err != nil {
		return User{}, err
	}
	s.log.InfoContext(ctx, "user created", "user", u.Username, "admin", u.Admin, "by", a.Name())
	return userOf(u), nil
}

// UserChange changes a user; nil fields stay as they are. Password ""
// disables password sign-in. CurrentPassword goes with Password when users
// signed in with a token change their own.
type UserChange struct {
	Admin           *bool
	Blocked         *bool
	Password        *string
	CurrentPassword *string
}

// UpdateUser changes a user. Users may change their own password; an
// instance admin may change anything of anyone but remove their own admin
// flag or block themselves. Checking a current password counts as a
// sign-in from address from: it is throttled, and a wrong one is counted.
// A new password or blocking ends the user's sessions.
func (s *Service) UpdateUser(ctx context.Context, a Actor, from netip.Addr, username string, c UserChange) (User, error) {
	self := a.User != nil && a.User.Username == username
	if c.Admin != nil || c.Blocked != nil || !self {
		if err := s.requireAdmin(a, "changing another user, an admin flag or a blocked state"); err != nil {
			return User{}, err
		}
	}
	u, err := s.lookupUser(ctx, username)
	if err != nil {
		return User{}, err
	}
	if c.CurrentPassword != nil && c.Password == nil {
		return User{}, invalid("currentPassword goes with password, the new one")
	}
	if self && (c.Admin != nil && !*c.Admin || c.Blocked != nil && *c.Blocked) {
		return User{}, refuse(ErrForbidden, "you cannot remove your own admin flag or block yourself; ask another instance admin")
	}
	change := store.UserChange{Admin: c.Admin, Blocked: c.Blocked}
	if c.Password != nil {
		if *c.Password != "" {
			if err := validatePassword(*c.Password); err != nil {
				return User{}, err
			}
		}
		current := ""
		if c.CurrentPassword != nil {
			current = *c.CurrentPassword
		}
		if err := s.authorizePasswordChange(ctx, from, a, u, current); err != nil {
			return User{}, err
		}
		h := ""
		if *c.Password != "" {
			if h, err = auth.HashPassword(*c.Password); err != nil {
				return User{}, err
			}
		}
		change.PasswordHash = &h
	}
	if err := s.store.UpdateUser(ctx, u.ID, change); err != nil {
		return User{}, err
	}
	if u, err = s.store.UserByID(ctx, u.ID); err != nil {
		return User{}, err
	}
	s.log.InfoContext(ctx, "user changed", "user", u.Username, "password_changed", change.PasswordHash != nil,
		"admin", u.Admin, "blocked", u.Blocked, "by", a.Name())
	return userOf(u), nil
}

// authorizePasswordChange is auth's rule with the Service's errors: a
// missing or wrong current password and throttling are refusals.
func (s *Service) authorizePasswordChange(ctx context.Context, from netip.Addr, a Actor, u store.User, current string) error {
	err := s.auth.AuthorizePasswordChange(ctx, from, a, u, current)
	if errors.Is(err, auth.ErrCurrentPassword) {
		msg := strings.TrimPrefix(err.Error(), auth.ErrCurrentPassword.Error()+": ")
		return refuse(ErrForbidden, "%s", fmt.Sprintf("%s (on the command line: dproxy user set-password %s --current-password)", msg, u.Username))
	}
	return fromAuth(err)
}

// DeleteUser deletes a user with their memberships and personal tokens
// (instance admin; not oneself).
func (s *Service) DeleteUser(ctx context.Context, a Actor, username string) error {
	if err := s.requireAdmin(a, "deleting users"); err != nil {
		return err
	}
	u, err := s.lookupUser(ctx, username)
	if err != nil {
		return err
	}
	if a.User != nil && a.User.ID == u.ID {
		return refuse(ErrForbidden, "you cannot delete yourself; ask another instance admin")
	}
	if err := s.store.DeleteUser(ctx, u.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.log.InfoContext(ctx, "user deleted", "user", u.Username, "by", a.Name())
	return nil
}
