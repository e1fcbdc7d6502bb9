package admin

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/oci"
)

// Kinds of refusal. Every error the Service returns for a reason the
// caller can act on is an *Error wrapping one of these; anything else is an
// internal failure (a database error, a bug) whose text is for the server
// log only. Transports map the kinds: REST to 400, 401, 403, 404, 409, 409,
// 429 and 502; GraphQL to its errors (see Error.Refused).
var (
	// ErrInvalid: the input is malformed or out of range.
	ErrInvalid = errors.New("invalid input")
	// ErrUnauthorized: no valid credentials, or credentials that cannot
	// use the admin API.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the caller may see the object but not do this to it.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: the object does not exist, or the caller may not see
	// it (the two are indistinguishable on purpose).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change clashes with the current state (a name is
	// taken, the object is in another state).
	ErrConflict = errors.New("conflict")
	// ErrLimit: the change would pass a configured maximum.
	ErrLimit = errors.New("limit reached")
	// ErrThrottled: too many failed attempts; try again later.
	ErrThrottled = errors.New("too many attempts")
	// ErrUnavailable: the server cannot do this now (an upstream it needs
	// failed, or it is not configured for it).
	ErrUnavailable = errors.New("unavailable")
)

// Error is a refusal with a message written for people: what was wrong
// and what to do. It never carries a secret.
type Error struct {
	// Kind is one of the Err* kinds above.
	Kind error
	// Message is the text to show.
	Message string
	// Refused is true when the request was understood and allowed, the
	// objects it names were found, and the operation itself was refused
	// (bad input, a name taken, a limit, nothing to delete). GraphQL
	// mutations answer these in their payload's errors; the rest go to
	// the top-level errors.
	Refused bool
	// RetryAfter is set for ErrThrottled.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Kind }

// refuse returns a refusal (Refused) of kind.
func refuse(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...), Refused: true}
}

// invalid is refuse(ErrInvalid, …).
func invalid(format string, args ...any) error { return refuse(ErrInvalid, format, args...) }

// fail returns an error of kind that is not a refusal of the operation:
// the caller may not do it, or what it names is not there.
func fail(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Message returns the message of an error meant for people, and false for
// an internal failure, whose text must not reach a client.
func Message(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Message, true
	}
	return "", false
}

// IsRefusal reports whether err refuses an operation that was allowed
// (Error.Refused).
func IsRefusal(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Refused
}

// fromAuth translates auth's errors into the Service's kinds, keeping
// their messages without the sentinel's prefix. Other errors pass as they
// are.
func fromAuth(err error) error {
	if err == nil {
		return nil
	}
	var throttled *auth.ThrottledError
	if errors.As(err, &throttled) {
		return &Error{Kind: ErrThrottled, Message: strip(err, oci.ErrTooManyRequests), Refused: true, RetryAfter: throttled.RetryAfter()}
	}
	for _, m := range []struct{ from, to error }{
		{oci.ErrNameUnknown, ErrNotFound},
		{oci.ErrDenied, ErrForbidden},
		{oci.ErrUnauthorized, ErrUnauthorized},
	} {
		if errors.Is(err, m.from) {
			return &Error{Kind: m.to, Message: strip(err, m.from)}
		}
	}
	return err
}

// strip drops a sentinel's own text from the front of an error message.
func strip(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
