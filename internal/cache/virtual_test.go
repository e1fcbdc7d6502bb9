package cache

import "testing"

func TestUpstreamImage(t *testing.T) {
	for _, c := range []struct{ url, image, want string }{
		{"https://registry-1.docker.io", "node", "library/node"},
		{"https://registry-1.docker.io", "bitnami/redis", "bitnami/redis"},
		{"https://mirror.gcr.io", "node", "library/node"},
		{"https://docker.io/", "alpine", "library/alpine"},
		{"https://quay.io", "node", "node"},
		{"http://127.0.0.1:5000/prefix", "team/app", "team/app"},
	} {
		if got := upstreamImage(c.url, c.image); got != c.want {
			t.Errorf("upstreamImage(%q, %q) = %q, want %q", c.url, c.image, got, c.want)
		}
	}
}
