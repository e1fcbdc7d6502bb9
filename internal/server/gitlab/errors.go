package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/dproxy/dproxy/internal/admin"
)

// statuses maps the admin service's kinds of refusal to HTTP statuses.
var statuses = []struct {
	kind   error
	status int
}{
	{admin.ErrInvalid, http.StatusBadRequest},
	{admin.ErrUnauthorized, http.StatusUnauthorized},
	{admin.ErrForbidden, http.StatusForbidden},
	{admin.ErrNotFound, http.StatusNotFound},
	{admin.ErrConflict, http.StatusConflict},
	{admin.ErrLimit, http.StatusConflict},
	{admin.ErrThrottled, http.StatusTooManyRequests},
	{admin.ErrUnavailable, http.StatusBadGateway},
}

// writeError answers err as GitLab does: {"message": "<status> <text>:
// <what to do>"}; a 404 says only "404 <resource> Not Found", as GitLab
// does (with the admin service's message when resource is ""). A body over
// the server's limit is a 413. Anything but an admin refusal is an
// internal failure: logged here, answered with a bare 500.
func (h *Handler) writeError(ctx context.Context, w http.ResponseWriter, r *http.Request, resource string, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeMessage(w, http.StatusRequestEntityTooLarge, "413 Request Entity Too Large: the request body is over "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes")
		return
	}
	msg, ok := admin.Message(err)
	status := http.StatusInternalServerError
	for _, s := range statuses {
		if ok && errors.Is(err, s.kind) {
			status = s.status
			break
		}
	}
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	switch status {
	case http.StatusInternalServerError:
		h.log.ErrorContext(ctx, "GitLab API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case http.StatusNotFound:
		if resource == "" {
			text += ": " + msg
		} else {
			text = "404 " + resource + " Not Found"
		}
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="dproxy admin API"`)
		text += ": " + msg
	case http.StatusTooManyRequests:
		var e *admin.Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
		}
		text += ": " + msg
	default:
		text += ": " + msg
	}
	writeMessage(w, status, text)
}

// writeMessage writes GitLab's error body.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

// writeJSON writes a JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// number parses a positive decimal id.
func number(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}
