package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/netpolicy"
	"github.com/dproxy/dproxy/internal/oci"
)

// Error is a failed upstream request. errors.Is matches the oci sentinel it
// maps to (ErrManifestUnknown, ErrBlobUnknown, ErrNameUnknown,
// ErrTooManyRequests, ErrUnavailable, ErrTimeout, ErrManifestInvalid) and
// the underlying cause.
type Error struct {
	Op      string // "HEAD manifest", "GET blob", ...
	Host    string // upstream host:port
	Repo    string
	Ref     string // tag or digest; "" when none
	Status  int    // HTTP status of the failing response; 0 when none
	Code    string // first error code of the upstream's OCI error body
	Message string // what went wrong, from the upstream's error body or from us
	Err     error  // underlying cause (network error, context error), may be nil

	sentinel   error
	retryAfter time.Duration
}

func (e *Error) Error() string {
	if e.sentinel == oci.ErrNameUnknown {
		return "not found on " + e.Host + ": " + e.Message
	}
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Repo != "" {
		b.WriteString(" " + e.Repo)
		switch {
		case strings.HasPrefix(e.Ref, "sha256:"):
			b.WriteString("@" + e.Ref)
		case e.Ref != "":
			b.WriteString(":" + e.Ref)
		}
	}
	b.WriteString(" from " + e.Host)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
	}
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.sentinel != nil {
		b.WriteString(" (" + e.sentinel.Error() + ")")
	}
	return b.String()
}

// Unwrap returns the oci sentinel and the underlying cause.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.sentinel != nil {
		errs = append(errs, e.sentinel)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Public says what went wrong in words that may be shown to anyone who
// pulls through an upstream someone other than the operator chose (a
// virtual-registry upstream): a generic reason, without the upstream's
// host, any address, the upstream's own error text or the underlying
// network error. Error() has those, for the log.
func (e *Error) Public() string {
	switch {
	case errors.Is(e.Err, netpolicy.ErrNotAllowed):
		return netpolicy.ErrNotAllowed.Error()
	case errors.Is(e.sentinel, oci.ErrTimeout):
		return "the upstream did not answer in time"
	case e.sentinel == oci.ErrNameUnknown:
		return "not found there: the repository does not exist, or it is private and the upstream's credentials may not read it"
	case e.Status == 0:
		return "the upstream could not be reached"
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return "the upstream rejected the credentials"
	case e.Status == http.StatusTooManyRequests:
		return "the upstream's rate limit is exhausted"
	case e.Status < 200 || e.Status > 299:
		return fmt.Sprintf("the upstream answered %d %s", e.Status, http.StatusText(e.Status))
	case errors.Is(e.sentinel, oci.ErrManifestInvalid) || errors.Is(e.Err, oci.ErrManifestInvalid):
		// What was wrong is dproxy's own check of the body, which names no
		// address: the owner needs it to fix their upstream.
		detail := e.Message
		if detail == "" && e.Err != nil {
			detail = strings.TrimPrefix(e.Err.Error(), oci.ErrManifestInvalid.Error()+": ")
		}
		return "the upstream sent an invalid manifest: " + detail
	}
	return "the upstream sent an answer that does not match the request"
}

// RetryAfter is the upstream's Retry-After delay of a 429 or 503; 0 if none.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

var _ oci.RetryAfterError = (*Error)(nil)

// op names one request for errors.
type op struct {
	name, kind, host, repo, ref string
}

func (o op) error(sentinel error, status int, msg string, cause error) *Error {
	return &Error{Op: o.name, Host: o.host, Repo: o.repo, Ref: o.ref, Status: status,
		Message: msg, Err: cause, sentinel: sentinel}
}

// notFoundOrPrivate turns e, a 401 insufficient_scope answered to a token
// the token service had just issued, into what it means on Docker Hub: the
// repository does not exist, or it is private and creds may not read it.
// It matches oci.ErrNameUnknown.
func (o op) notFoundOrPrivate(e *Error, creds Credentials) *Error {
	e.sentinel = oci.ErrNameUnknown
	e.Message = fmt.Sprintf("%s does not exist there, or it is private and %s may not read it (the registry answered insufficient_scope to a token it had just issued)",
		o.repo, creds.Named())
	return e
}

// notFound turns e, a 404 of a request about the whole repository (its
// tag list), into oci.ErrNameUnknown naming the repository.
func (o op) notFound(e *Error) *Error {
	e.sentinel = oci.ErrNameUnknown
	msg := o.repo + " does not exist there"
	if e.Message != "" {
		msg += " (the registry says: " + e.Message + ")"
	}
	e.Message = msg
	return e
}

// transportError maps an error of http.Client.Do to ErrTimeout (deadline,
// network timeout) or ErrUnavailable.
func (o op) transportError(err error) *Error {
	if isTimeout(err) {
		return o.error(oci.ErrTimeout, 0, "", err)
	}
	return o.error(oci.ErrUnavailable, 0, "", err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// statusError maps an unexpected response to an *Error, reading at most
// 64 KiB of its body for the upstream's error code and message.
func (o op) statusError(res *http.Response) *Error {
	var sentinel error
	switch {
	case res.StatusCode == http.StatusNotFound && o.kind == kindManifest:
		sentinel = oci.ErrManifestUnknown
	case res.StatusCode == http.StatusNotFound && o.kind == kindBlob:
		sentinel = oci.ErrBlobUnknown
	case res.StatusCode == http.StatusTooManyRequests:
		sentinel = oci.ErrTooManyRequests
	default:
		sentinel = oci.ErrUnavailable
	}
	e := o.error(sentinel, res.StatusCode, "", nil)
	e.Code, e.Message = parseErrorBody(res.Body)
	if res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable {
		e.retryAfter = parseRetryAfter(res.Header.Get("Retry-After"), time.Now())
	}
	if e.Message == "" {
		e.Message = http.StatusText(res.StatusCode)
	}
	return e
}

// parseErrorBody reads the OCI error envelope {"errors":[{"code","message"}]}
// or a token service's {"details": "..."}.
func parseErrorBody(body io.Reader) (code, message string) {
	if body == nil {
		return "", ""
	}
	b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	var env struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Details string `json:"details"`
	}
	if json.Unmarshal(b, &env) != nil {
		return "", ""
	}
	if len(env.Errors) > 0 {
		return env.Errors[0].Code, env.Errors[0].Message
	}
	return "", env.Details
}

// parseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
