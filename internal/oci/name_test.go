package oci

import (
	"strings"
	"testing"
)

func TestParseVirtualRepository(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		ok     bool
		id     int64
		image  string
		errSub string
	}{
		{"virtual_registries/container/3/alpine", true, 3, "alpine", ""},
		{"virtual_registries/container/12/prometheus/node-exporter", true, 12, "prometheus/node-exporter", ""},
		{"acme/dependency_proxy/containers/alpine", false, 0, "", ""},
		{"virtual_registries/container/x/alpine", true, 0, "", "not a virtual registry id"},
		{"virtual_registries/container/0/alpine", true, 0, "", "not a virtual registry id"},
		{"virtual_registries/container/03/alpine", true, 0, "", "not a virtual registry id"},
		{"virtual_registries/container/3", true, 0, "", "image"},
		{"virtual_registries/container/3/Alpine", true, 0, "", "image"},
	} {
		repo, ok, err := ParseVirtualRepository(tc.name)
		if ok != tc.ok || (tc.errSub == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.errSub)) ||
			(err == nil && ok && (repo.RegistryID != tc.id || repo.Image != tc.image)) {
			t.Errorf("ParseVirtualRepository(%q) = %+v, %v, %v", tc.name, repo, ok, err)
		}
	}
}
