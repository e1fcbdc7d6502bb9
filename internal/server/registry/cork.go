package registry

import (
	"context"
	"net"
)

type connKey struct{}

// WithConn keeps a request's connection in its context (http.Server's
// ConnContext), so a blob response can cork it; see cork.
func WithConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// cork holds back partial TCP segments on the request's connection until
// the returned function is called, so response headers and the first bytes
// of a file leave together and the file goes out in full segments, as
// nginx's tcp_nopush does with sendfile. Without a plain TCP connection
// (TLS, tests) it does nothing.
func cork(ctx context.Context) (uncork func()) {
	c, ok := ctx.Value(connKey{}).(*net.TCPConn)
	if !ok {
		return func() {}
	}
	rc, err := c.SyscallConn()
	if err != nil || setCork(rc, true) != nil {
		return func() {}
	}
	return func() { _ = setCork(rc, false) }
}
