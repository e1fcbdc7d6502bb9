package admin

import (
	"context"
	"errors"
	"sync"

	"github.com/dproxy/dproxy/internal/store"
)

// A request scope remembers, for one request of one actor, the groups the
// Service found the actor may read, so that reading many fields of a group
// (its setting, its counts, its role) costs no further permission checks,
// and the cohort each group was shown in, so that a value asked of many
// groups is read for all of them at once (batch.go). Only the Service
// writes it; a transport attaches it to a request's context with
// WithRequestScope and drops it with the request.
type requestScope struct {
	mu       sync.Mutex
	subject  string
	readable map[int64]store.Group
	home     map[int64]*cohort
}

type scopeKey struct{}

// WithRequestScope returns ctx carrying a fresh request scope. Transports
// call it once per request; without it every read checks permissions
// again and reads one group's values at a time.
func WithRequestScope(ctx context.Context) context.Context {
	return context.WithValue(ctx, scopeKey{}, &requestScope{readable: map[int64]store.Group{}, home: map[int64]*cohort{}})
}

func scopeOf(ctx context.Context, a Actor) *requestScope {
	sc, _ := ctx.Value(scopeKey{}).(*requestScope)
	if sc == nil {
		return nil
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.subject == "" {
		sc.subject = a.Subject()
	}
	if sc.subject != a.Subject() {
		return nil // another actor: nothing remembered applies
	}
	return sc
}

// rememberReadable records that a may read the groups.
func rememberReadable(ctx context.Context, a Actor, gs ...store.Group) {
	sc := scopeOf(ctx, a)
	if sc == nil {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, g := range gs {
		sc.readable[g.ID] = g
	}
}

// readableGroup returns group id when a may read it (guest or instance
// admin), else ErrNotFound as for an unknown group.
func (s *Service) readableGroup(ctx context.Context, a Actor, id int64) (store.Group, error) {
	if sc := scopeOf(ctx, a); sc != nil {
		sc.mu.Lock()
		g, ok := sc.readable[id]
		sc.mu.Unlock()
		if ok {
			return g, nil
		}
	}
	g, err := s.store.GroupByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Group{}, fail(ErrNotFound, "group %d not found", id)
	}
	if err != nil {
		return store.Group{}, err
	}
	if _, err := s.authorizeGroup(ctx, a, g.Path, store.RoleGuest, "reading the group"); err != nil {
		if errors.Is(err, ErrNotFound) {
			return store.Group{}, fail(ErrNotFound, "group %d not found", id)
		}
		return store.Group{}, err
	}
	rememberReadable(ctx, a, g)
	return g, nil
}
