package gitlab

import (
	"net/http"

	"github.com/dproxy/dproxy/internal/admin"
)

// purgeCache is DELETE /api/v4/groups/:id/dependency_proxy/cache: the
// group's owner (or an instance admin) purges its dependency proxy cache;
// 202 as GitLab, which purges in the background.
func (h *Handler) purgeCache(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	path, err := h.groupPath(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	if _, err := h.svc.Purge(r.Context(), a, path); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`202`))
	return nil
}
