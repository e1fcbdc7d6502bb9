package cache_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
	"github.com/dproxy/dproxy/internal/upstream"
)

// TestListReadTime: a read of a stored list records its read time (what
// TTL policies expire on) at most once an hour, so a warm list costs no
// write.
func TestListReadTime(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	h.push(t, "library/app", "v1", 64)
	tg := h.target(t, "acme", "library/app", upstream.Credentials{})
	tg.FreshnessWindow = 24 * time.Hour
	ctx := t.Context()
	if l, err := h.cache.Tags(ctx, tg); err != nil || l.Result != metrics.ResultMiss || !slices.Equal(l.Tags, []string{"v1"}) {
		t.Fatalf("first listing: %+v, %v", l, err)
	}
	readAt := func() time.Time {
		t.Helper()
		row, err := h.store.List(ctx, tg.GroupID, "library/app", store.ListTags, "")
		if err != nil {
			t.Fatal(err)
		}
		return row.ReadAt
	}
	first := readAt()
	h.clock.Add(30 * time.Minute)
	if l, _ := h.cache.Tags(ctx, tg); l.Result != metrics.ResultHit {
		t.Fatalf("within the window: %s, want a hit", l.Result)
	}
	if got := readAt(); !got.Equal(first) {
		t.Errorf("a read 30 minutes later wrote the read time (%v → %v)", first, got)
	}
	h.clock.Add(31 * time.Minute)
	h.cache.Tags(ctx, tg)
	if got, want := readAt(), epoch.Add(61*time.Minute); !got.Equal(want) {
		t.Errorf("a read 61 minutes later: read time %v, want %v", got, want)
	}
}

// TestListNotFoundIsNotStale: a repository the upstream no longer knows is
// NAME_UNKNOWN, even with a stored list; only failures serve it stale.
func TestListNotFoundIsNotStale(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	h.push(t, "library/app", "v1", 64)
	tg := h.target(t, "acme", "library/app", upstream.Credentials{})
	ctx := t.Context()
	if _, err := h.cache.Tags(ctx, tg); err != nil {
		t.Fatal(err)
	}
	h.up.SetStatus(http.StatusNotFound)
	if _, err := h.cache.Tags(ctx, tg); !errors.Is(err, oci.ErrNameUnknown) {
		t.Errorf("upstream 404 with a stored list: %v, want NAME_UNKNOWN", err)
	}
	h.up.SetStatus(http.StatusInternalServerError)
	if l, err := h.cache.Tags(ctx, tg); err != nil || l.Result != metrics.ResultStale {
		t.Errorf("upstream 500 with a stored list: %+v, %v, want it stale", l, err)
	}
}

// TestListOneFetchForConcurrentCallers: callers asking for the same list
// while it is fetched share the one upstream request.
func TestListOneFetchForConcurrentCallers(t *testing.T) {
	t.Parallel()
	g := newGate(t)
	h := newHarness(t, setup{intercept: func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
		if req.Header.Get("Authorization") != "" && strings.HasSuffix(req.URL.Path, "/tags/list") {
			if err := g.wait(req.Context()); err != nil {
				return nil, err
			}
		}
		return next.RoundTrip(req)
	}})
	h.push(t, "library/app", "v1", 64)
	tg := h.target(t, "acme", "library/app", upstream.Credentials{})
	const callers = 4
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	list := func(ctx context.Context) {
		defer wg.Done()
		l, err := h.cache.Tags(ctx, tg)
		if err == nil && !slices.Equal(l.Tags, []string{"v1"}) {
			err = fmt.Errorf("tags %v, want [v1]", l.Tags)
		}
		errs <- err
	}
	wg.Add(1)
	go list(t.Context())
	select {
	case <-g.arrived: // the first caller's request is held at the upstream
	case <-time.After(patience):
		t.Fatal("no tag list request reached the upstream")
	}
	waiting := make(chan struct{}, callers)
	for range callers - 1 {
		wg.Add(1)
		go list(&listWaitingCtx{Context: t.Context(), waiting: waiting})
	}
	for range callers - 1 {
		select {
		case <-waiting:
		case <-time.After(patience):
			t.Fatal("a caller never joined the fetch")
		}
	}
	g.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// The challenge, then the one request with a token.
	if n := h.up.Count(http.MethodGet, testregistry.KindTags); n != 2 {
		t.Errorf("%d upstream tag list requests for %d callers, want 2 (a challenge and one)", n, callers)
	}
}

// listWaitingCtx reports when a caller waits for a list fetch it shares:
// when Cache.listing selects on Done, after it joined the fetch.
type listWaitingCtx struct {
	context.Context
	once    sync.Once
	waiting chan<- struct{}
}

const listingFunc = "github.com/dproxy/dproxy/internal/cache.(*Cache).listing"

func (c *listWaitingCtx) Done() <-chan struct{} {
	pc := make([]uintptr, 1)
	caller, _ := runtime.CallersFrames(pc[:runtime.Callers(2, pc)]).Next()
	if caller.Function == listingFunc {
		c.once.Do(func() { c.waiting <- struct{}{} })
	}
	return c.Context.Done()
}
