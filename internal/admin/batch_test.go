package admin

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// countingStore counts the store reads a Service makes of group values.
type countingStore struct {
	*memStore
	mu sync.Mutex
	n  map[string]int
}

func (c *countingStore) count(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[name]++
}

func (c *countingStore) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

func (c *countingStore) Groups(ctx context.Context) ([]store.Group, error) {
	c.count("Groups")
	return c.memStore.Groups(ctx)
}
func (c *countingStore) GroupByID(ctx context.Context, id int64) (store.Group, error) {
	c.count("GroupByID")
	return c.memStore.GroupByID(ctx, id)
}
func (c *countingStore) GroupUsage(ctx context.Context, id int64) (store.Usage, error) {
	c.count("GroupUsage")
	return c.memStore.GroupUsage(ctx, id)
}
func (c *countingStore) GroupUsages(ctx context.Context, ids []int64) (map[int64]store.Usage, error) {
	c.count("GroupUsages")
	return c.memStore.GroupUsages(ctx, ids)
}
func (c *countingStore) ProxySetting(ctx context.Context, id int64) (store.ProxySetting, error) {
	c.count("ProxySetting")
	return c.memStore.ProxySetting(ctx, id)
}
func (c *countingStore) ProxySettings(ctx context.Context, ids []int64) (map[int64]store.ProxySetting, error) {
	c.count("ProxySettings")
	return c.memStore.ProxySettings(ctx, ids)
}
func (c *countingStore) TTLPolicy(ctx context.Context, id int64) (store.TTLPolicy, error) {
	c.count("TTLPolicy")
	return c.memStore.TTLPolicy(ctx, id)
}
func (c *countingStore) TTLPolicies(ctx context.Context, ids []int64) (map[int64]store.TTLPolicy, error) {
	c.count("TTLPolicies")
	return c.memStore.TTLPolicies(ctx, ids)
}

// batchRig is a Service over a counting memStore holding n top-level
// groups t<i>, each with a subgroup t<i>/s, which has a subgroup t<i>/s/x.
type batchRig struct {
	h   *harness
	st  *countingStore
	svc *Service
	a   Actor
}

func newBatchRig(t *testing.T, n int) *batchRig {
	h := newHarness(t, Options{})
	st := &countingStore{memStore: h.st, n: map[string]int{}}
	r := &batchRig{h: h, st: st, svc: New(st, fakeCache{h.calls}, auth.NewService(h.st, nil, auth.ServiceOptions{}), Options{})}
	r.a = h.user("olga", false)
	for i := range n {
		top := h.group(fmt.Sprintf("t%02d", i))
		h.member(top, r.a, store.RoleGuest)
		sub := h.group(top.Path + "/s")
		h.group(sub.Path + "/x")
		h.st.mu.Lock()
		h.st.manifests[h.st.id()] = store.Manifest{OwnerID: sub.ID, Size: int64(100 + i)}
		h.st.mu.Unlock()
	}
	return r
}

// fields resolves, concurrently as a GraphQL server does, the usage,
// setting and TTL policy of each group and then the same of its
// subgroups, depth levels down. It fails the test when a value differs
// from the one-group read of the store.
func (r *batchRig) fields(ctx context.Context, t *testing.T, gs []Group, depth int) {
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Go(func() {
			u, err := r.svc.Usage(ctx, r.a, g.ID)
			if want, _ := r.h.st.GroupUsage(ctx, g.ID); err != nil || u != want {
				t.Errorf("usage of %s = %+v, %v; want %+v", g.Path, u, err, want)
			}
		})
		wg.Go(func() {
			if p, err := r.svc.ProxySetting(ctx, r.a, g.ID); err != nil || p.GroupID != g.ID {
				t.Errorf("setting of %s = %+v, %v", g.Path, p, err)
			}
		})
		wg.Go(func() {
			if p, err := r.svc.TTLPolicy(ctx, r.a, g.ID); err != nil || p.GroupID != g.ID {
				t.Errorf("ttl policy of %s = %+v, %v", g.Path, p, err)
			}
		})
		if depth > 0 {
			wg.Go(func() {
				subs, err := r.svc.Subgroups(ctx, r.a, g.ID)
				if err != nil || len(subs) != 1 || subs[0].ParentID != g.ID {
					t.Errorf("subgroups of %s = %+v, %v; want its one subgroup", g.Path, subs, err)
					return
				}
				r.fields(ctx, t, subs, depth-1)
			})
		}
	}
	wg.Wait()
}

// TestBatchedGroupValues: within a request scope, the values of the
// groups one read showed are read in one store call per kind and cohort,
// however many groups and in whatever order they are asked; without a
// scope each group costs its own read.
func TestBatchedGroupValues(t *testing.T) {
	t.Parallel()
	type run func(r *batchRig, ctx context.Context, t *testing.T)
	listing := func(r *batchRig, ctx context.Context, t *testing.T) {
		gs, err := r.svc.Groups(ctx, r.a, GroupQuery{Search: "/s/"})
		if err != nil || len(gs) == 0 {
			t.Fatalf("Groups = %d, %v", len(gs), err)
		}
		r.fields(ctx, t, gs, 0)
	}
	tree := func(r *batchRig, ctx context.Context, t *testing.T) {
		gs, err := r.svc.Groups(ctx, r.a, GroupQuery{Search: "t", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var tops []Group
		for _, g := range gs {
			if g.ParentID == 0 {
				tops = append(tops, g)
			}
		}
		// Subgroups are shown by the listing too: the tree reads no more.
		r.fields(ctx, t, tops, 2)
	}
	single := func(r *batchRig, ctx context.Context, t *testing.T) {
		g, err := r.svc.Group(ctx, r.a, "t00")
		if err != nil {
			t.Fatal(err)
		}
		top := []Group{g}
		// Each level down is one cohort: the subgroups of the level above.
		r.fields(ctx, t, top, 2)
	}
	for _, c := range []struct {
		name  string
		run   run
		scope bool
		want  map[string]int // store reads, for every number of groups
	}{
		{"listing", listing, true, map[string]int{"Groups": 1, "GroupUsages": 1, "ProxySettings": 1, "TTLPolicies": 1}},
		{"tree of a listing", tree, true, map[string]int{"Groups": 1, "GroupUsages": 1, "ProxySettings": 1, "TTLPolicies": 1}},
		{"tree of one group", single, true, map[string]int{"Groups": 1, "GroupUsages": 3, "ProxySettings": 3, "TTLPolicies": 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, n := range []int{3, 30} {
				r := newBatchRig(t, n)
				c.run(r, WithRequestScope(t.Context()), t)
				got := r.st.counts()
				if fmt.Sprint(got) != fmt.Sprint(c.want) {
					t.Errorf("%d groups: store reads %v, want %v", n, got, c.want)
				}
			}
		})
	}
	t.Run("no scope", func(t *testing.T) {
		t.Parallel()
		r := newBatchRig(t, 3)
		listing(r, t.Context(), t)
		if got := r.st.counts(); got["GroupUsages"] != 3 || got["ProxySettings"] != 3 || got["TTLPolicies"] != 3 {
			t.Errorf("store reads without a scope %v, want one of each per group", got)
		}
	})
}

// TestBatchedGroupGone: a listed group deleted before its values are read
// is not found, and the other groups of its cohort are unaffected.
func TestBatchedGroupGone(t *testing.T) {
	t.Parallel()
	r := newBatchRig(t, 2)
	ctx := WithRequestScope(t.Context())
	gs, err := r.svc.Groups(ctx, r.a, GroupQuery{Search: "/s/"})
	if err != nil || len(gs) != 2 {
		t.Fatalf("Groups = %+v, %v", gs, err)
	}
	if err := r.h.st.DeleteGroup(ctx, gs[0].ID); err != nil {
		t.Fatal(err)
	}
	_, err = r.svc.Usage(ctx, r.a, gs[0].ID)
	wantKind(t, "usage of a deleted group", err, ErrNotFound, false, "not found")
	_, err = r.svc.ProxySetting(ctx, r.a, gs[0].ID)
	wantKind(t, "setting of a deleted group", err, ErrNotFound, false, "not found")
	if _, err := r.svc.Usage(ctx, r.a, gs[1].ID); err != nil {
		t.Errorf("usage of the other group: %v", err)
	}
}

// TestFirstReadsOfAGroupRace: the first fields of a group no read of the
// request showed, asked at once, share one cohort; none of them finds the
// group missing because another made its cohort first.
func TestFirstReadsOfAGroupRace(t *testing.T) {
	t.Parallel()
	r := newBatchRig(t, 1)
	g, err := r.h.st.GroupByPath(t.Context(), "t00")
	if err != nil {
		t.Fatal(err)
	}
	for range 500 {
		ctx := WithRequestScope(t.Context())
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := r.svc.ProxySetting(ctx, r.a, g.ID); err != nil {
					t.Errorf("setting: %v", err)
				}
			})
			wg.Go(func() {
				if _, err := r.svc.TTLPolicy(ctx, r.a, g.ID); err != nil {
					t.Errorf("TTL policy: %v", err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}
