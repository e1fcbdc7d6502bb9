package cache_test

import (
	"context"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/upstream"
)

// fakeRemote lists nothing: its tests are about blobs.

func (r *fakeRemote) Tags(context.Context, upstream.Credentials, string) ([]string, error) {
	return nil, oci.ErrNameUnknown
}

func (r *fakeRemote) Referrers(context.Context, upstream.Credentials, string, oci.Digest) (upstream.Referrers, error) {
	return upstream.Referrers{}, nil
}
