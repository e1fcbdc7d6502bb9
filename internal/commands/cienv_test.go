package commands_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/testregistry"
)

// The CI variables carry the port of the server's external URL, not of the
// address the CLI reached it at: here an https server behind a TLS proxy,
// reached by the CLI over plain http.
func TestCIEnvPortComesFromTheExternalURL(t *testing.T) {
	t.Parallel()
	srv := serve(t, testregistry.New(t, testregistry.Options{}), "--external-url", "https://dproxy.example.test")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(srv.bin, args...)
		cmd.Env = append(os.Environ(), "DPROXY_SERVER="+srv.URL, "DPROXY_DATA_DIR="+srv.DataDir, "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dproxy %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("group", "create", "acme")
	out := run("ci-env", "acme")
	for _, want := range []string{
		"CI_DEPENDENCY_PROXY_SERVER=dproxy.example.test:443\n",
		"CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX=dproxy.example.test:443/acme/dependency_proxy/containers\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ci-env printed\n%s\nwant a line %q", out, strings.TrimSpace(want))
		}
	}
	if out := run("ci-env", "acme", "--oidc"); !strings.Contains(out, `aud: "https://dproxy.example.test"`) {
		t.Errorf("ci-env --oidc printed\n%s\nwant the external URL as the audience", out)
	}
}
