package app

import (
	"net"
	"testing"
)

func TestLoopback(t *testing.T) {
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.2:5000", true},
		{"[::1]:5000", true},
		{"[::]:5000", false},
		{"0.0.0.0:5000", false},
		{"192.0.2.10:5000", false},
	} {
		a, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := loopback(a); got != c.want {
			t.Errorf("loopback(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
}
