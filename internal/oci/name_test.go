package oci

import (
	"errors"
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

func TestParseRepository(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		kind    NameKind
		group   string
		id      int64
		image   string
		invalid bool
	}{
		{name: "acme/sub/dependency_proxy/containers/bitnami/redis", kind: ProxyName, group: "acme/sub", image: "bitnami/redis"},
		{name: "virtual_registries/container/3/prometheus/node-exporter", kind: VirtualName, id: 3, image: "prometheus/node-exporter"},
		// The virtual form wins over the proxy form inside it.
		{name: "virtual_registries/container/3/a/dependency_proxy/containers/b", kind: VirtualName, id: 3, image: "a/dependency_proxy/containers/b"},
		{name: "library/alpine", kind: PlainName},
		{name: "alpine", kind: PlainName},
		{name: "Library/Alpine", invalid: true},
		{name: "", invalid: true},
		{name: "virtual_registries/container/x/alpine", invalid: true},
		{name: "virtual_registries/container/3", invalid: true},
	} {
		r, err := ParseRepository(tc.name)
		if tc.invalid {
			if !errors.Is(err, ErrNameInvalid) {
				t.Errorf("ParseRepository(%q) = %+v, %v; want an error wrapping ErrNameInvalid", tc.name, r, err)
			}
			continue
		}
		if err != nil || r.Name != tc.name || r.Kind != tc.kind || r.Proxy.Group != tc.group || r.Virtual.RegistryID != tc.id ||
			(tc.kind == ProxyName && r.Proxy.Image != tc.image) || (tc.kind == VirtualName && r.Virtual.Image != tc.image) {
			t.Errorf("ParseRepository(%q) = %+v, %v", tc.name, r, err)
		}
	}
}
