package registry

import (
	"context"
	"net"
	"syscall"
	"testing"
)

func TestCorkHoldsSegmentsUntilUncorked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	corked := func() int {
		t.Helper()
		rc, err := server.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		return v
	}
	uncork := cork(WithConn(context.Background(), server))
	if corked() != 1 {
		t.Error("TCP_CORK is off after cork")
	}
	uncork()
	if corked() != 0 {
		t.Error("TCP_CORK is on after uncork")
	}
	cork(context.Background())() // no connection: nothing to do, no panic
}
