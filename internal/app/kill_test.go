package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/commands"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// TestMain lets a test run this test binary as `dproxy`.
func TestMain(m *testing.M) {
	if os.Getenv("DPROXY_TEST_RUN_MAIN") == "1" {
		os.Exit(commands.Main())
	}
	os.Exit(m.Run())
}

// serveProcess runs `dproxy serve` as a child process on a free port.
func serveProcess(t testing.TB, dataDir, upstreamURL string) (*exec.Cmd, string) {
	cmd, base, _ := serveProcessLog(t, dataDir, upstreamURL)
	return cmd, base
}

// serveProcessEnv is serveProcess with variables added to the child's
// environment.
func serveProcessEnv(t testing.TB, dataDir, upstreamURL string, env ...string) (*exec.Cmd, string) {
	cmd, base, _ := serveProcessLog(t, dataDir, upstreamURL, env...)
	return cmd, base
}

// serveProcessLog is serveProcess that also returns the path of the log;
// env adds variables to the child's environment.
func serveProcessLog(t testing.TB, dataDir, upstreamURL string, env ...string) (*exec.Cmd, string, string) {
	t.Helper()
	// A free port may be taken between picking and binding it: then the
	// child exits saying so, and another port is tried.
	for attempt := 1; ; attempt++ {
		cmd, addr, logPath, err := startServe(t, dataDir, upstreamURL, env)
		if err == nil {
			return cmd, "http://" + addr, logPath
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

// startServe starts `dproxy serve` on a port that was free a moment ago and
// waits until it listens (its log says so) or exits.
func startServe(t testing.TB, dataDir, upstreamURL string, env []string) (*exec.Cmd, string, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "serve", "--addr", addr, "--data-dir", dataDir,
		"--upstream", upstreamURL, "--external-url", "http://"+addr, "--log-format", "json")
	cmd.Env = append(append(os.Environ(), "DPROXY_TEST_RUN_MAIN=1"), env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		logf.Close()
	})
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(logf.Name())
		switch {
		case strings.Contains(string(b), `"msg":"dproxy listening"`):
			return cmd, addr, logf.Name(), nil
		case strings.Contains(string(b), "listen on "+addr):
			cmd.Wait()
			return nil, "", "", fmt.Errorf("dproxy serve exited: %s", b)
		case time.Now().After(deadline):
			t.Fatalf("dproxy serve on %s did not listen within a minute: %s", addr, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKilledDuringDownloadServesNoPartialBlob(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	img := up.PushRandomImage(t, "library/big", "v1", 1, 16<<20)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	up.SetBandwidth(2 << 20)

	dir := t.TempDir()
	secret := prepareDataDir(t, dir)
	cfg := config.Default()
	cfg.DataDir = dir
	ctx := context.Background()

	repo := "acme/dependency_proxy/containers/big"
	get := func(base string) (*http.Response, error) {
		tok := fetchJWT(t, base, "alice", secret, repo)
		req, _ := http.NewRequest(http.MethodGet, base+"/v2/"+repo+"/blobs/"+d.String(), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return http.DefaultClient.Do(req)
	}

	cmd, base := serveProcess(t, dir, up.URL)
	res, err := get(base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 2<<20)); err != nil {
		t.Fatalf("read the first bytes: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := io.Copy(io.Discard, res.Body); err == nil {
		t.Errorf("the client's body ended cleanly although the server was killed mid-download")
	}
	res.Body.Close()

	fs, err := blobstore.NewFS(cfg.BlobDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(ctx, oci.Digest(d.String())); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Fatalf("a partial blob is in place after the kill: %v", err)
	}

	up.SetBandwidth(0)
	_, base = serveProcess(t, dir, up.URL)
	res, err = get(base)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || digestOf(body) != d.String() {
		t.Fatalf("after restart: status %d, err %v, digest %s", res.StatusCode, err, digestOf(body))
	}
	if n := up.CountBlob("GET", d.String()); n != 2 {
		t.Errorf("%d upstream GETs of the blob, want 2 (one killed, one after restart)", n)
	}
	waitFor(t, "temp files to be gone", func() bool {
		entries, _ := os.ReadDir(filepath.Join(cfg.BlobDir(), "tmp"))
		return len(entries) == 0
	})
}

// prepareDataDir creates, in a data dir a server will open, group acme with
// guest alice; it returns alice's token secret.
func prepareDataDir(t testing.TB, dir string) string {
	t.Helper()
	ctx := context.Background()
	st := openDataDir(t, dir)
	defer st.Close()
	g, err := st.CreateGroup(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, store.User{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetMember(ctx, g.ID, u.ID, store.RoleGuest); err != nil {
		t.Fatal(err)
	}
	secret, hash := auth.NewTokenSecret(store.TokenPersonal)
	if _, err := st.CreateToken(ctx, store.Token{Kind: store.TokenPersonal, Name: "t", UserID: u.ID, Scopes: []string{auth.ScopeReadRegistry}, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	return secret
}

// openDataDir opens the store of a data dir, creating its key and
// database when missing.
func openDataDir(t testing.TB, dir string) *store.Store {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dir
	key, err := secretbox.LoadOrCreateKey(cfg.SecretKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), cfg.DBPath(), box)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// addAdmin creates an instance admin with an api token in a data dir that
// no server uses yet, and returns the token.
func addAdmin(t testing.TB, dir string) string {
	t.Helper()
	ctx := context.Background()
	st := openDataDir(t, dir)
	defer st.Close()
	u, err := st.CreateUser(ctx, store.User{Username: "root", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	secret, hash := auth.NewTokenSecret(store.TokenPersonal)
	if _, err := st.CreateToken(ctx, store.Token{Kind: store.TokenPersonal, Name: "metrics", UserID: u.ID, Scopes: []string{auth.ScopeAPI}, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	return secret
}

// getMetrics reads /metrics with an admin token.
func getMetrics(t testing.TB, base, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", res.StatusCode, b)
	}
	return string(b)
}

// fetchJWT asks a server's token endpoint for a pull token on repo.
func fetchJWT(t testing.TB, base, user, secret, repo string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/jwt/auth?service=dependency_proxy&scope=repository:"+repo+":pull", nil)
	req.SetBasicAuth(user, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct{ Token string }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.Token == "" {
		t.Fatalf("token answer %d: %v", res.StatusCode, err)
	}
	return body.Token
}

func TestServeLifecycle(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	dir := t.TempDir()
	cmd, base, logPath := serveProcessLog(t, dir, up.URL)

	tokenPath := filepath.Join(dir, "initial_admin_token")
	fi, err := os.Stat(tokenPath)
	if err != nil {
		t.Fatalf("initial admin token: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("initial admin token mode %v, want 0600", fi.Mode().Perm())
	}
	tok, _ := os.ReadFile(tokenPath)
	for _, path := range []string{"/-/health", "/-/readiness", "/metrics"} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: %d %s", path, res.StatusCode, body)
		}
		if path == "/metrics" && !strings.Contains(string(body), "dproxy_http_requests_total") {
			t.Errorf("/metrics lacks dproxy_http_requests_total")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("dproxy serve exited with %v after SIGTERM, want 0", err)
	}
	logs, _ := os.ReadFile(logPath)
	if !strings.Contains(string(logs), tokenPath) {
		t.Errorf("the log does not name the token file %s:\n%s", tokenPath, logs)
	}
	if secret := strings.TrimSpace(string(tok)); secret == "" || strings.Contains(string(logs), secret) {
		t.Errorf("the log contains the admin token (or the token file is empty)")
	}
	// A second start keeps the admin token.
	_, _ = serveProcess(t, dir, up.URL)
	tok2, _ := os.ReadFile(tokenPath)
	if string(tok2) != string(tok) {
		t.Errorf("the initial admin token changed on restart")
	}
}

// A running server keeps its cache under --cache-max-size by itself: new
// blobs start a size-cap run within seconds, not at the next hourly GC.
func TestServeEnforcesSizeCapAfterDownloads(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	const layer = 256 << 10
	for i := range 6 {
		up.PushRandomImage(t, fmt.Sprintf("library/img%d", i), "v1", 1, layer)
	}
	dir := t.TempDir()
	secret := prepareDataDir(t, dir)
	admin := addAdmin(t, dir)
	maxSize := int64(3 * layer)
	_, base := serveProcessEnv(t, dir, up.URL, fmt.Sprintf("DPROXY_CACHE_MAX_SIZE=%d", maxSize), "DPROXY_GC_INTERVAL=24h")
	host := strings.TrimPrefix(base, "http://")
	for i := range 6 {
		pullAll(t, fmt.Sprintf("%s/acme/dependency_proxy/containers/img%d:v1", host, i), pullOpts("alice", secret))
	}
	metric := func(name string) float64 {
		for _, line := range strings.Split(getMetrics(t, base, admin), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("metric line %q: %v", line, err)
				}
				return f
			}
		}
		return 0
	}
	waitFor(t, "the downloads to be stored", func() bool { return metric("dproxy_inflight_downloads") == 0 })
	waitFor(t, "the cache to shrink under its cap by evicting", func() bool {
		return metric("dproxy_cache_evictions_total") > 0 && int64(metric("dproxy_cache_stored_bytes")) <= maxSize
	})
}
