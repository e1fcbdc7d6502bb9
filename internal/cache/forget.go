package cache

// ForgetGroup drops a group from the downloads in flight, so that a
// download finishing after the group's cache was purged or the group was
// deleted does not record a blob reference for it again. Clients of the
// group already streaming keep their bytes. Call it before removing the
// group's rows: a download committing in between records a reference the
// removal then deletes. A new pull that joins afterwards is a new use of
// the cache and is recorded as usual. In the Cache of a virtual registry
// upstream, groupID is the upstream's id (see Target.GroupID).
func (c *Cache) ForgetGroup(groupID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, dl := range c.downloads {
		dl.mu.Lock()
		delete(dl.owners, groupID)
		dl.mu.Unlock()
	}
}
