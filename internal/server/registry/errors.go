package registry

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/dproxy/dproxy/internal/oci"
)

// errorCodes maps the sentinel errors of oci to OCI error codes and HTTP
// statuses. The first match wins, so more specific errors come first.
var errorCodes = []struct {
	err    error
	code   string
	status int
}{
	{oci.ErrNameInvalid, "NAME_INVALID", http.StatusBadRequest},
	{oci.ErrTagInvalid, "TAG_INVALID", http.StatusBadRequest},
	{oci.ErrDigestInvalid, "DIGEST_INVALID", http.StatusBadRequest},
	// dproxy accepts no pushes: an invalid manifest is always the upstream's.
	{oci.ErrManifestInvalid, "MANIFEST_INVALID", http.StatusBadGateway},
	{oci.ErrSizeInvalid, "SIZE_INVALID", http.StatusBadRequest},
	{oci.ErrUnauthorized, "UNAUTHORIZED", http.StatusUnauthorized},
	{oci.ErrDenied, "DENIED", http.StatusForbidden},
	{oci.ErrNameUnknown, "NAME_UNKNOWN", http.StatusNotFound},
	{oci.ErrManifestUnknown, "MANIFEST_UNKNOWN", http.StatusNotFound},
	{oci.ErrBlobUnknown, "BLOB_UNKNOWN", http.StatusNotFound},
	{oci.ErrUnsupported, "UNSUPPORTED", http.StatusMethodNotAllowed},
	{oci.ErrRangeUnsatisfied, "RANGE_INVALID", http.StatusRequestedRangeNotSatisfiable},
	{oci.ErrPaginationInvalid, "PAGINATION_NUMBER_INVALID", http.StatusBadRequest},
	{oci.ErrTooManyRequests, "TOOMANYREQUESTS", http.StatusTooManyRequests},
	{oci.ErrTimeout, "UNAVAILABLE", http.StatusGatewayTimeout},
	{oci.ErrUnavailable, "UNAVAILABLE", http.StatusBadGateway},
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail"`
}

// classify returns the OCI code and HTTP status of err.
func classify(err error) (string, int) {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code, e.status
		}
	}
	return "UNKNOWN", http.StatusInternalServerError
}

// writeError writes err as an OCI error envelope. It is the one place where
// a registry failure is rendered and logged. Internal errors are logged in
// full and answered with a generic message.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code, status := classify(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		log.ErrorContext(r.Context(), "registry request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal server error; the server log has the details"
	} else if status >= 500 {
		log.WarnContext(r.Context(), "registry request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if d, ok := oci.RetryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int((d+999_999_999)/1_000_000_000)))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	h.Del("ETag")
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: code, Message: msg, Detail: nil}}})
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
