// Package oci is dproxy's registry vocabulary: digests, repository names,
// references, media types and the sentinel errors every layer translates to.
// It performs no I/O and imports no other dproxy package.
package oci

import (
	"errors"
	"time"
)

// Sentinel errors of the registry surface. Lower layers wrap them with
// context (fmt.Errorf("…: %w", oci.ErrManifestUnknown)); the registry
// handler maps them to an OCI error code and HTTP status with errors.Is.
var (
	ErrNameInvalid      = errors.New("invalid repository name")
	ErrTagInvalid       = errors.New("invalid tag")
	ErrDigestInvalid    = errors.New("invalid digest")
	ErrManifestInvalid  = errors.New("invalid manifest")
	ErrManifestUnknown  = errors.New("manifest unknown")
	ErrBlobUnknown      = errors.New("blob unknown")
	ErrNameUnknown      = errors.New("repository name not known to registry")
	ErrUnauthorized     = errors.New("authentication required")
	ErrDenied           = errors.New("requested access to the resource is denied")
	ErrTooManyRequests  = errors.New("too many requests")
	ErrUnavailable      = errors.New("service unavailable")
	ErrTimeout          = errors.New("upstream timed out")
	ErrUnsupported      = errors.New("the operation is unsupported")
	ErrSizeInvalid      = errors.New("provided length did not match content length")
	ErrRangeUnsatisfied = errors.New("requested range not satisfiable")
)

// RetryAfterError is implemented by errors that carry a server's
// Retry-After hint (for example an upstream 429).
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

// RetryAfter returns the Retry-After hint carried by err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var ra RetryAfterError
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return ra.RetryAfter(), true
	}
	return 0, false
}
