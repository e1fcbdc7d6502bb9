package admin

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/store/storetest"
)

// interleaved is a real store whose reads of a proxy setting meet at a
// barrier after reading: of two changes that read the setting before
// writing it back whole, both have read before either writes, the
// interleaving that loses one of them. A change that does not read the setting passes straight
// through.
type interleaved struct {
	*store.Store
	readers atomic.Int32
	met     chan struct{}
}

func (s *interleaved) ProxySetting(ctx context.Context, groupID int64) (store.ProxySetting, error) {
	p, err := s.Store.ProxySetting(ctx, groupID)
	// Whoever read first waits until the second has read too.
	if n := s.readers.Add(1); n == 2 {
		close(s.met)
	} else if n == 1 {
		select {
		case <-s.met:
		case <-time.After(10 * time.Second): // only ends a run that never meets
		}
	}
	return p, err
}

func testBox(t *testing.T) *secretbox.Box {
	b, err := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConcurrentSettingChanges: two owners change different fields of one
// group's dependency proxy setting at the same time; both changes survive,
// on SQLite and on PostgreSQL.
func TestConcurrentSettingChanges(t *testing.T) {
	t.Parallel()
	for _, backend := range []struct {
		name string
		open func(t *testing.T) *store.Store
	}{
		{"sqlite", func(t *testing.T) *store.Store {
			st, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "dproxy.db"), testBox(t))
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
		{"postgres", func(t *testing.T) *store.Store {
			st, err := store.OpenPostgres(t.Context(), storetest.PostgresDSN(t), testBox(t), store.PostgresOptions{MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			raw := backend.open(t)
			t.Cleanup(func() { raw.Close() })
			st := &interleaved{Store: raw, met: make(chan struct{})}
			svc := New(st, nil, auth.NewService(raw, nil, auth.ServiceOptions{}), Options{})
			ctx := t.Context()
			if _, err := svc.CreateGroup(ctx, System, "acme"); err != nil {
				t.Fatal(err)
			}
			window := 90 * time.Second
			var wg sync.WaitGroup
			errs := make([]error, 2)
			wg.Go(func() {
				_, errs[0] = svc.UpdateProxySetting(ctx, System, "acme", ProxySettingChange{Enabled: ptr(false)})
			})
			wg.Go(func() {
				_, errs[1] = svc.UpdateProxySetting(ctx, System, "acme", ProxySettingChange{FreshnessWindow: &window})
			})
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			g, err := raw.GroupByPath(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			got, err := raw.ProxySetting(ctx, g.ID)
			if err != nil || got.Enabled || got.FreshnessWindow != window {
				t.Errorf("after two concurrent changes: enabled %v, window %s, %v; want both changes: disabled, %s", got.Enabled, got.FreshnessWindow, err, window)
			}
		})
	}
}
