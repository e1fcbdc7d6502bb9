package admin

import (
	"context"
	"sync"

	"github.com/dproxy/dproxy/internal/store"
)

// A cohort is the groups one read showed together: a page of Groups, the
// subgroups of the groups of one cohort, the group of one Group call.
// Within a request scope (WithRequestScope), a value of a group — its
// cache usage, proxy setting, TTL policy or subgroups — is read for every
// group of its cohort in one store call the first time it is asked of any
// of them, and kept for the rest of the request. So a field of N listed
// groups costs one store call, not N, in whatever order and concurrency a
// transport resolves the fields; and the count depends only on which
// lists the request reads, never on timing.
//
// Each group belongs to the first cohort that showed it in the request
// (its home). Values are read once per request: a request that changes a
// group and then reads a value its cohort already holds sees the value
// from before the change.
type cohort struct {
	// ids are the groups whose home this cohort is; fixed once made.
	ids []int64
	// all is every group by path as read when the cohort was made, for
	// finding subgroups without reading the groups again; nil when the
	// cohort was made without them.
	all []store.Group

	usage    lazy[map[int64]store.Usage]
	settings lazy[map[int64]store.ProxySetting]
	ttl      lazy[map[int64]store.TTLPolicy]
	// children is the cohort of the subgroups of the groups of this one.
	children lazy[*cohort]
}

// lazy is a value loaded at most once: the first get loads it while the
// others wait for it. A failed load is not kept; the next get tries again.
type lazy[T any] struct {
	mu   sync.Mutex
	done bool
	v    T
}

func (l *lazy[T]) get(load func() (T, error)) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		v, err := load()
		if err != nil {
			return v, err
		}
		l.v, l.done = v, true
	}
	return l.v, nil
}

// show makes the cohort of groups gs, shown together by one read; all is
// every group when the read had them (else nil). Groups the request had
// already shown keep their home. Without a request scope the cohort lives
// for this call only.
func show(ctx context.Context, a Actor, gs, all []store.Group) *cohort {
	c := &cohort{all: all}
	sc := scopeOf(ctx, a)
	if sc == nil {
		for _, g := range gs {
			c.ids = append(c.ids, g.ID)
		}
		return c
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, g := range gs {
		if _, ok := sc.home[g.ID]; !ok {
			sc.home[g.ID] = c
			c.ids = append(c.ids, g.ID)
		}
	}
	return c
}

// cohortOf returns the home of a group the actor may read, making it a
// cohort of its own when no read of the request showed it. Finding and
// making the home is one step: fields of the group asked at once share it.
func cohortOf(ctx context.Context, a Actor, g store.Group) *cohort {
	sc := scopeOf(ctx, a)
	if sc == nil {
		return &cohort{ids: []int64{g.ID}}
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	c, ok := sc.home[g.ID]
	if !ok {
		c = &cohort{ids: []int64{g.ID}}
		sc.home[g.ID] = c
	}
	return c
}

// batched returns the value of group id from the cohort's lazy l, loading
// it for the whole cohort with read. A group read returns nothing for was
// deleted meanwhile: ErrNotFound.
func batched[T any](ctx context.Context, c *cohort, l *lazy[map[int64]T], id int64,
	read func(context.Context, []int64) (map[int64]T, error)) (T, error) {
	m, err := l.get(func() (map[int64]T, error) { return read(ctx, c.ids) })
	if err != nil {
		var zero T
		return zero, err
	}
	v, ok := m[id]
	if !ok {
		return v, fail(ErrNotFound, "group %d not found", id)
	}
	return v, nil
}

// subgroupsOf returns the direct subgroups of g, a group the actor may
// read, by path: from the subgroups of g's whole cohort, found once.
func (s *Service) subgroupsOf(ctx context.Context, a Actor, g store.Group) ([]store.Group, error) {
	c := cohortOf(ctx, a, g)
	kids, err := c.children.get(func() (*cohort, error) {
		all := c.all
		if all == nil {
			var err error
			if all, err = s.store.Groups(ctx); err != nil {
				return nil, err
			}
		}
		parents := make(map[int64]bool, len(c.ids))
		for _, id := range c.ids {
			parents[id] = true
		}
		var subs []store.Group
		for _, x := range all {
			if parents[x.ParentID] {
				subs = append(subs, x)
			}
		}
		// Whoever reads a group reads its subgroups.
		rememberReadable(ctx, a, subs...)
		return show(ctx, a, subs, all), nil
	})
	if err != nil {
		return nil, err
	}
	var out []store.Group
	for _, x := range kids.all {
		if x.ParentID == g.ID {
			out = append(out, x)
		}
	}
	return out, nil
}
