package store

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestSharedSecret(t *testing.T) {
	t.Parallel()
	for _, b := range twoHandles {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a, other := b.open(t)
			ctx := t.Context()
			// Replicas race to create it: all get the same, single value.
			const n = 8
			got := make([][]byte, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				s := a
				if i%2 == 1 {
					s = other
				}
				wg.Go(func() {
					got[i], errs[i] = s.SharedSecret(ctx, "jwt_signing_key", func() ([]byte, error) {
						return fmt.Appendf(nil, "key-%d", i), nil
					})
				})
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil || !bytes.Equal(got[i], got[0]) || len(got[0]) == 0 {
					t.Fatalf("caller %d got %q, %v; caller 0 got %q: want one shared value", i, got[i], errs[i], got[0])
				}
			}
			// Once stored it is not created again.
			v, err := other.SharedSecret(ctx, "jwt_signing_key", func() ([]byte, error) { return nil, errors.New("must not be called") })
			if err != nil || !bytes.Equal(v, got[0]) {
				t.Errorf("second read = %q, %v; want %q", v, err, got[0])
			}
			// It is sealed: the row does not hold it in plain text.
			var sealed []byte
			if err := a.w.QueryRowContext(ctx, `SELECT value_sealed FROM instance_settings WHERE key = $1`, "jwt_signing_key").Scan(&sealed); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(sealed, got[0]) {
				t.Errorf("stored value holds the secret in plain text")
			}
			if _, err := a.SharedSecret(ctx, hubCredentialsKey, nil); err == nil {
				t.Errorf("SharedSecret of the reserved hub credentials key succeeded")
			}
			if _, err := a.SharedSecret(ctx, "other", func() ([]byte, error) { return nil, errors.New("no entropy") }); err == nil {
				t.Errorf("SharedSecret with a failing create succeeded")
			}
		})
	}
}
