package store

import "testing"

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"https://registry.example.com", "https://registry.example.com/mirror", true},
		{"https://registry.example.com", "https://REGISTRY.example.com:443/", true},
		{"http://127.0.0.1", "http://127.0.0.1:80/x", true},
		{"http://[::1]:5000", "http://[::1]:5000/v", true},
		{"https://registry.example.com", "http://registry.example.com", false},
		{"https://registry.example.com", "https://registry.example.com:5000", false},
		{"https://registry.example.com", "https://registry.example.com.evil.test", false},
		{"http://127.0.0.1:5000", "http://127.0.0.2:5000", false},
		{"http://[::1]:5000", "http://[::1]:5001", false},
		{"https://registry.example.com", "::not a url", false},
		{"", "", false},
	} {
		if got := SameOrigin(c.a, c.b); got != c.want {
			t.Errorf("SameOrigin(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := SameOrigin(c.b, c.a); got != c.want {
			t.Errorf("SameOrigin(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}
