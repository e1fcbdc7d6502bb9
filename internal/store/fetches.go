package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// FetchLease is the claim of one replica on fetching a blob from its
// upstream, so that replicas sharing the database fetch it once.
type FetchLease struct {
	Holder    string // the replica holding it
	PeerURL   string // where other replicas stream the blob from meanwhile; "" for nowhere
	ExpiresAt time.Time
}

// AcquireFetchLease takes the lease on fetching blob d for holder until
// expires, unless another holder has one that has not expired at now; a
// holder taking its own lease again renews it. It returns the lease as it
// stands afterwards: held is true when it is holder's. Taking over an
// expired lease is atomic: of replicas racing for it, one wins.
func (s *Store) AcquireFetchLease(ctx context.Context, d oci.Digest, holder, peerURL string, now, expires time.Time) (lease FetchLease, held bool, _ error) {
	err := s.w.QueryRowContext(ctx, `INSERT INTO blob_fetches (digest, holder, peer_url, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (digest) DO UPDATE SET holder = excluded.holder, peer_url = excluded.peer_url, expires_at = excluded.expires_at
			WHERE blob_fetches.holder = excluded.holder OR blob_fetches.expires_at <= $5
		RETURNING holder, peer_url, expires_at`,
		string(d), holder, peerURL, dbTime(expires), dbTime(now)).Scan(&lease.Holder, &lease.PeerURL, &lease.ExpiresAt)
	if err == nil {
		lease.ExpiresAt = lease.ExpiresAt.UTC()
		return lease, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return FetchLease{}, false, fmt.Errorf("take the fetch lease of blob %s: %w", d, err)
	}
	err = s.w.QueryRowContext(ctx, `SELECT holder, peer_url, expires_at FROM blob_fetches WHERE digest = $1`, string(d)).
		Scan(&lease.Holder, &lease.PeerURL, &lease.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		// Released in between: try again.
		return s.AcquireFetchLease(ctx, d, holder, peerURL, now, expires)
	}
	if err != nil {
		return FetchLease{}, false, fmt.Errorf("read the fetch lease of blob %s: %w", d, err)
	}
	lease.ExpiresAt = lease.ExpiresAt.UTC()
	return lease, false, nil
}

// RenewFetchLease moves the expiry of holder's lease on blob d to
// expires. held is false when the lease is no longer holder's (it expired
// and another replica took it over).
func (s *Store) RenewFetchLease(ctx context.Context, d oci.Digest, holder string, expires time.Time) (held bool, _ error) {
	res, err := s.w.ExecContext(ctx, `UPDATE blob_fetches SET expires_at = $1 WHERE digest = $2 AND holder = $3`,
		dbTime(expires), string(d), holder)
	if err != nil {
		return false, fmt.Errorf("renew the fetch lease of blob %s: %w", d, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("renew the fetch lease of blob %s: %w", d, err)
	}
	return n > 0, nil
}

// ReleaseFetchLease ends holder's lease on blob d, if it still has it.
func (s *Store) ReleaseFetchLease(ctx context.Context, d oci.Digest, holder string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM blob_fetches WHERE digest = $1 AND holder = $2`, string(d), holder); err != nil {
		return fmt.Errorf("release the fetch lease of blob %s: %w", d, err)
	}
	return nil
}
