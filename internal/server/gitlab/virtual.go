package gitlab

import (
	"net/http"

	"github.com/dproxy/dproxy/internal/admin"
)

// GitLab's container virtual registries API. Reading needs the guest role
// in the registry's group, changing it the owner role (the admin service
// decides). Lists take page and per_page and answer GitLab's pagination
// headers.
const (
	groupVR = "/api/v4/groups/{id}/-/virtual_registries/container"
	vr      = "/api/v4/virtual_registries/container"
)

func (h *Handler) routeVirtualRegistries() {
	h.route("GET "+groupVR+"/registries", "Group", h.listRegistries)
	h.route("POST "+groupVR+"/registries", "Group", h.createRegistry)
	h.route("GET "+vr+"/registries/{id}", "Registry", h.getRegistry)
	h.route("PATCH "+vr+"/registries/{id}", "Registry", h.updateRegistry)
	h.route("DELETE "+vr+"/registries/{id}", "Registry", h.deleteRegistry)
	h.route("DELETE "+vr+"/registries/{id}/cache", "Registry", h.clearRegistryCache)

	h.route("GET "+groupVR+"/upstreams", "Group", h.listGroupUpstreams)
	h.route("GET "+vr+"/registries/{id}/upstreams", "Registry", h.listRegistryUpstreams)
	h.route("POST "+vr+"/registries/{id}/upstreams", "Registry", h.createUpstream)
	h.route("GET "+vr+"/upstreams/{id}", "Upstream", h.getUpstream)
	h.route("PATCH "+vr+"/upstreams/{id}", "Upstream", h.updateUpstream)
	h.route("DELETE "+vr+"/upstreams/{id}", "Upstream", h.deleteUpstream)
	h.route("DELETE "+vr+"/upstreams/{id}/cache", "Upstream", h.clearUpstreamCache)

	// An association names a registry and an upstream: a 404 says which.
	h.route("POST "+vr+"/registry_upstreams", "", h.associateUpstream)
	h.route("PATCH "+vr+"/registry_upstreams/{id}", "Registry Upstream", h.moveUpstream)
	h.route("DELETE "+vr+"/registry_upstreams/{id}", "Registry Upstream", h.disassociateUpstream)

	h.route("GET "+vr+"/upstreams/{id}/cache_entries", "Upstream", h.listCacheEntries)
	h.route("DELETE "+vr+"/cache_entries/{id...}", "Cache Entry", h.deleteCacheEntry)
}

// pageSlice is page p of items.
func pageSlice[T any](items []T, p page) []T {
	from := min(p.Offset(), len(items))
	return items[from:min(from+p.PerPage, len(items))]
}

// writeList answers page p of items, rendered by one, with the pagination
// headers.
func writeList[T, J any](h *Handler, w http.ResponseWriter, r *http.Request, p page, items []T, one func(T) J) {
	h.setPageHeaders(w, r, p, len(items))
	out := []J{}
	for _, x := range pageSlice(items, p) {
		out = append(out, one(x))
	}
	writeJSON(w, http.StatusOK, out)
}

// noContent answers 204, as GitLab answers a deletion.
func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

// listRegistries is GET /groups/:id/-/virtual_registries/container/registries.
func (h *Handler) listRegistries(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	group, err := h.groupPath(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	rs, err := h.svc.Registries(r.Context(), a, group)
	if err != nil {
		return err
	}
	writeList(h, w, r, p, rs, func(x admin.Registry) registryJSON { return registryOf(x, false) })
	return nil
}

// createRegistry is POST /groups/:id/-/virtual_registries/container/registries
// with name and description: 201 and the registry.
func (h *Handler) createRegistry(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	in, err := paramsOf(r)
	if err != nil {
		return err
	}
	if err := in.required("name"); err != nil {
		return err
	}
	name, err := in.String("name")
	if err != nil {
		return err
	}
	desc, err := in.String("description")
	if err != nil {
		return err
	}
	group, err := h.groupPath(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	reg, err := h.svc.CreateRegistry(r.Context(), a, group, admin.RegistryInput{Name: *name, Description: deref(desc)})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, registryOf(reg, true))
	return nil
}

// getRegistry is GET /virtual_registries/container/registries/:id.
func (h *Handler) getRegistry(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "virtual registry")
	if err != nil {
		return err
	}
	reg, err := h.svc.Registry(r.Context(), a, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, registryOf(reg, true))
	return nil
}

// updateRegistry is PATCH /virtual_registries/container/registries/:id with
// name, description or both.
func (h *Handler) updateRegistry(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "virtual registry")
	if err != nil {
		return err
	}
	in, err := paramsOf(r)
	if err != nil {
		return err
	}
	if err := in.atLeastOne("name", "description"); err != nil {
		return err
	}
	var c admin.RegistryChange
	if c.Name, err = in.String("name"); err != nil {
		return err
	}
	if c.Description, err = in.String("description"); err != nil {
		return err
	}
	reg, err := h.svc.UpdateRegistry(r.Context(), a, id, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, registryOf(reg, true))
	return nil
}

// deleteRegistry is DELETE /virtual_registries/container/registries/:id:
// the registry, its upstreams and their caches go.
func (h *Handler) deleteRegistry(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "virtual registry")
	if err != nil {
		return err
	}
	if err := h.svc.DeleteRegistry(r.Context(), a, id); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// clearRegistryCache is DELETE /virtual_registries/container/registries/:id/cache:
// every cache entry of the registry's upstreams goes, at once (GitLab
// schedules it).
func (h *Handler) clearRegistryCache(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "virtual registry")
	if err != nil {
		return err
	}
	if _, err := h.svc.ClearRegistryCache(r.Context(), a, id, 0); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// listGroupUpstreams is GET /groups/:id/-/virtual_registries/container/upstreams,
// filtered by upstream_name (contained, ignoring case).
func (h *Handler) listGroupUpstreams(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	group, err := h.groupPath(r.Context(), a, r.PathValue("id"))
	if err != nil {
		return err
	}
	us, err := h.svc.GroupUpstreams(r.Context(), a, group, r.URL.Query().Get("upstream_name"))
	if err != nil {
		return err
	}
	writeList(h, w, r, p, us, func(u admin.Upstream) upstreamJSON { return upstreamOf(u, upstreamAlone) })
	return nil
}

// listRegistryUpstreams is GET /virtual_registries/container/registries/:id/upstreams,
// in the order they are asked.
func (h *Handler) listRegistryUpstreams(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "virtual registry")
	if err != nil {
		return err
	}
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	us, err := h.svc.Upstreams(r.Context(), a, id)
	if err != nil {
		return err
	}
	writeList(h, w, r, p, us, func(u admin.Upstream) upstreamJSON { return upstreamOf(u, upstreamInList) })
	return nil
}

// createUpstream is POST /virtual_registries/container/registries/:id/upstreams
// with url, name, cache_validity_hours, username and password: the
// upstream is asked after the registry's others. description is taken and
// not kept: dproxy's upstreams have none.
func (h *Handler) createUpstream(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "virtual registry")
	if err != nil {
		return err
	}
	in, err := paramsOf(r)
	if err != nil {
		return err
	}
	if err := in.required("url", "name"); err != nil {
		return err
	}
	c, err := upstreamParams(in)
	if err != nil {
		return err
	}
	u, err := h.svc.CreateUpstream(r.Context(), a, id, admin.UpstreamInput{
		Name: *c.Name, URL: *c.URL, Username: deref(c.Username), Password: deref(c.Password), CacheValidityHours: c.CacheValidityHours,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, upstreamOf(u, upstreamInList))
	return nil
}

// upstreamParams reads an upstream's parameters.
func upstreamParams(in params) (admin.UpstreamChange, error) {
	var c admin.UpstreamChange
	var err error
	for _, f := range []struct {
		name string
		to   **string
	}{{"name", &c.Name}, {"url", &c.URL}, {"username", &c.Username}, {"password", &c.Password}, {"description", new(*string)}} {
		if *f.to, err = in.String(f.name); err != nil {
			return c, err
		}
	}
	hours, err := in.Int("cache_validity_hours")
	if err != nil {
		return c, err
	}
	c.CacheValidityHours, err = intParam("cache_validity_hours", hours)
	return c, err
}

// getUpstream is GET /virtual_registries/container/upstreams/:id.
func (h *Handler) getUpstream(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "upstream")
	if err != nil {
		return err
	}
	u, err := h.svc.Upstream(r.Context(), a, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, upstreamOf(u, upstreamOnItsOwn))
	return nil
}

// updateUpstream is PATCH /virtual_registries/container/upstreams/:id with
// at least one of GitLab's parameters. A URL on another scheme, host or
// port clears the stored credentials unless both come with it.
func (h *Handler) updateUpstream(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "upstream")
	if err != nil {
		return err
	}
	in, err := paramsOf(r)
	if err != nil {
		return err
	}
	if err := in.atLeastOne("cache_validity_hours", "description", "name", "password", "url", "username"); err != nil {
		return err
	}
	c, err := upstreamParams(in)
	if err != nil {
		return err
	}
	u, err := h.svc.UpdateUpstream(r.Context(), a, id, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, upstreamOf(u.Upstream, upstreamOnItsOwn))
	return nil
}

// deleteUpstream is DELETE /virtual_registries/container/upstreams/:id:
// the upstream and its cache go; the upstreams after it move up.
func (h *Handler) deleteUpstream(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "upstream")
	if err != nil {
		return err
	}
	if _, err := h.svc.DeleteUpstream(r.Context(), a, id); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// clearUpstreamCache is DELETE /virtual_registries/container/upstreams/:id/cache.
func (h *Handler) clearUpstreamCache(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "upstream")
	if err != nil {
		return err
	}
	if _, err := h.svc.ClearUpstreamCache(r.Context(), a, id); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// associateUpstream is POST /virtual_registries/container/registry_upstreams
// with registry_id and upstream_id. An upstream serves the one registry it
// was created in, so the admin service refuses this (409, or 400 across
// groups) with a message saying what to do instead.
func (h *Handler) associateUpstream(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	in, err := paramsOf(r)
	if err != nil {
		return err
	}
	if err := in.required("registry_id", "upstream_id"); err != nil {
		return err
	}
	reg, err := in.Int("registry_id")
	if err != nil {
		return err
	}
	up, err := in.Int("upstream_id")
	if err != nil {
		return err
	}
	assoc, err := h.svc.AssociateUpstream(r.Context(), a, *reg, *up)
	//lint:ignore SA4023 the service refuses every association today; the transport answers as GitLab would when one succeeds
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, registryUpstreamOf(assoc))
	return nil
}

// moveUpstream is PATCH /virtual_registries/container/registry_upstreams/:id
// with position, from 1 (asked first); past the end means last. It answers
// the association at its new position.
func (h *Handler) moveUpstream(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "registry upstream")
	if err != nil {
		return err
	}
	in, err := paramsOf(r)
	if err != nil {
		return err
	}
	if err := in.required("position"); err != nil {
		return err
	}
	n, err := in.Int("position")
	if err != nil {
		return err
	}
	pos, err := intParam("position", n)
	if err != nil {
		return err
	}
	if *pos < 1 {
		return invalid("position is invalid: use 1 (asked first) or more, got %d", *pos)
	}
	us, err := h.svc.MoveUpstream(r.Context(), a, id, *pos-1)
	if err != nil {
		return err
	}
	for _, u := range us {
		if u.ID == id {
			writeJSON(w, http.StatusOK, registryUpstreamOf(u.Association()))
			return nil
		}
	}
	// Deleted while it moved.
	return &admin.Error{Kind: admin.ErrNotFound, Message: "the upstream was deleted meanwhile"}
}

// disassociateUpstream is DELETE /virtual_registries/container/registry_upstreams/:id.
// The admin service refuses it (409): an upstream cannot outlive its
// registry here; deleting the upstream removes it.
func (h *Handler) disassociateUpstream(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "registry upstream")
	if err != nil {
		return err
	}
	//lint:ignore SA4023 the service refuses every disassociation today; the transport answers as GitLab would when one succeeds
	if err := h.svc.DisassociateUpstream(r.Context(), a, id); err != nil {
		return err
	}
	noContent(w)
	return nil
}

// listCacheEntries is GET /virtual_registries/container/upstreams/:id/cache_entries,
// by relative path, filtered by search (contained, ignoring case).
func (h *Handler) listCacheEntries(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	id, err := pathID(r, "upstream")
	if err != nil {
		return err
	}
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	page, err := h.svc.CacheEntries(r.Context(), a, id, admin.CacheEntryQuery{
		Search: r.URL.Query().Get("search"), Offset: p.Offset(), Limit: p.PerPage, WithTotal: true,
	})
	if err != nil {
		return err
	}
	h.setPageHeaders(w, r, p, page.Total)
	out := make([]cacheEntryJSON, len(page.Entries))
	for i, e := range page.Entries {
		out[i] = cacheEntryOf(e)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteCacheEntry is DELETE /virtual_registries/container/cache_entries/*id,
// the id a list answered: the next pull asks the upstream again.
func (h *Handler) deleteCacheEntry(w http.ResponseWriter, r *http.Request, a admin.Actor) error {
	upstreamID, path, err := parseCacheEntryID(r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := h.svc.DeleteCacheEntry(r.Context(), a, upstreamID, path); err != nil {
		return err
	}
	noContent(w)
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
