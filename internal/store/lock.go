package store

import (
	"context"
	"sync"
)

// lockKeyPrefix namespaces dproxy's advisory locks in a shared database.
const lockKeyPrefix = "dproxy:"

// TryLock takes the cluster-wide lock name without waiting, for background
// work that must run on one replica at a time (TTL expiry, garbage
// collection, size-cap eviction). ok is false when another holder has it.
// When ok, call unlock exactly once when the work is done.
//
// On PostgreSQL it is a session-level advisory lock, held on a connection
// of its own (each held lock uses one pooled connection); it also ends if
// that connection breaks, so the work under it must be safe to repeat. On
// SQLite, which a single process owns, it is an in-process lock of this
// Store.
func (s *Store) TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error) {
	return s.tryLock(ctx, name)
}

// processLocks are named try-locks within one process.
type processLocks struct {
	mu   sync.Mutex
	held map[string]bool
}

func newProcessLocks() *processLocks { return &processLocks{held: make(map[string]bool)} }

func (l *processLocks) tryLock(ctx context.Context, name string) (func(), bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[name] {
		return nil, false, nil
	}
	l.held[name] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.held, name)
			l.mu.Unlock()
		})
	}, true, nil
}
