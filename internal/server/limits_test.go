package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// readAll answers with how many body bytes it could read, or the error.
var readAll = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	fmt.Fprint(w, n)
})

func TestSlowBodiesAreCutOff(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(limitBodies(readAll, 200*time.Millisecond))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/jwt/auth", "/api/graphql", "/api/v4/groups/1/dependency_proxy/cache"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Announce 1000 bytes, send 10, then nothing: the server must
			// give up on the body rather than hold the connection.
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789", path)
			// A generous deadline: it only bounds a failing run.
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("the server held a slow %s body: %v", path, err)
			}
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode == http.StatusOK {
				t.Fatalf("slow body of %s read as %s", path, body)
			}
		})
	}
}

// The deadline bounds the client's sending, not the server's work before
// it reads: a handler that is slow to start reading still gets a body the
// client sent at once.
func TestBodyDeadlineStartsAtFirstRead(t *testing.T) {
	t.Parallel()
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		readAll(w, r)
	})
	srv := httptest.NewServer(limitBodies(slow, 200*time.Millisecond))
	t.Cleanup(srv.Close)
	res, err := http.Post(srv.URL+"/api/graphql", "application/json", strings.NewReader(strings.Repeat(" ", maxAdminBody)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != fmt.Sprint(maxAdminBody) {
		t.Errorf("a body sent at once to a handler that starts reading late: %d %.100s, want 200 %d", res.StatusCode, body, maxAdminBody)
	}
}

func TestBodiesAreCapped(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(limitBodies(readAll, time.Minute))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		path string
		size int
		ok   bool
	}{
		{"/jwt/auth", maxTokenForm, true},
		{"/jwt/auth", maxTokenForm + 1, false},
		{"/api/graphql", maxAdminBody, true},
		{"/api/graphql", maxAdminBody + 1, false},
		{"/api/v4/groups/1/dependency_proxy/cache", maxAdminBody + 1, false},
		// Registry paths are not the limiter's business.
		{"/v2/acme/dependency_proxy/containers/alpine/blobs/sha256:00", 4 * maxAdminBody, true},
	} {
		res, err := http.Post(srv.URL+c.path, "application/octet-stream", strings.NewReader(strings.Repeat("x", c.size)))
		if err != nil {
			t.Fatalf("POST %s: %v", c.path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if got := res.StatusCode == http.StatusOK; got != c.ok {
			t.Errorf("POST %s with %d bytes: %d %s, want ok=%v", c.path, c.size, res.StatusCode, body, c.ok)
		}
		if c.ok && string(body) != fmt.Sprint(c.size) {
			t.Errorf("POST %s read %s bytes, want %d", c.path, body, c.size)
		}
	}
}
