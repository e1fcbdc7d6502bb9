package graphql

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// REST returns the handler of GitLab's REST API subset under /api/v4/:
//
//	DELETE /api/v4/groups/<id or url-encoded full path>/dependency_proxy/cache → 202
//
// It takes the same tokens as the GraphQL API (Authorization: Bearer, or
// GitLab's PRIVATE-TOKEN header) and the same owner rule. Errors are
// GitLab's {"message": "..."} bodies: 401 without a valid api token, 403
// for a member below owner, 404 for an unknown or invisible group.
func (h *Handler) REST() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /api/v4/groups/{id}/dependency_proxy/cache", h.purgeREST)
	mux.HandleFunc("/api/v4/", func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusNotFound, "404 Not Found: dproxy implements only DELETE /api/v4/groups/:id/dependency_proxy/cache")
	})
	return mux
}

func (h *Handler) purgeREST(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, err := h.authenticate(r)
	if err != nil {
		if msg, ok := publicMessage(err); ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dproxy admin API"`)
			writeMessage(w, http.StatusUnauthorized, "401 Unauthorized: "+msg)
			return
		}
		writeMessage(w, http.StatusInternalServerError, "500 Internal Server Error")
		return
	}
	ctx = withPrincipal(ctx, p)
	path := r.PathValue("id")
	if id, err := strconv.ParseInt(path, 10, 64); err == nil {
		g, err := h.store.GroupByID(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeMessage(w, http.StatusNotFound, "404 Group Not Found")
			return
		case err != nil:
			h.log.ErrorContext(ctx, "look up group for purge", "group_id", id, "err", err)
			writeMessage(w, http.StatusInternalServerError, "500 Internal Server Error")
			return
		}
		path = g.Path
	}
	g, _, err := h.auth.AuthorizeGroup(ctx, p, path, store.RoleOwner, "purging the dependency proxy cache")
	switch {
	case errors.Is(err, oci.ErrNameUnknown):
		writeMessage(w, http.StatusNotFound, "404 Group Not Found")
		return
	case errors.Is(err, oci.ErrDenied):
		msg, _ := publicMessage(err)
		writeMessage(w, http.StatusForbidden, "403 Forbidden: "+msg)
		return
	case err != nil:
		h.log.ErrorContext(ctx, "authorize purge", "group", path, "err", err)
		writeMessage(w, http.StatusInternalServerError, "500 Internal Server Error")
		return
	}
	if _, err := h.purgeGroup(ctx, g); err != nil {
		h.log.ErrorContext(ctx, "purge group cache", "group", g.Path, "err", err)
		writeMessage(w, http.StatusInternalServerError, "500 Internal Server Error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`202`))
}

// writeMessage writes GitLab's error body.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
