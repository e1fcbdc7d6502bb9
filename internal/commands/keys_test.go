package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/lifecycle"
)

// keys rotate-secret and rotate-jwt replace the keys of a stopped data
// dir, and refuse one a server holds.
func TestKeysRotate(t *testing.T) {
	t.Parallel()
	d := newDataDir(t)
	secret := filepath.Join(d.dir, "secret.key")
	if err := os.WriteFile(secret, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jwt := filepath.Join(d.dir, "jwt.pem")
	if err := os.WriteFile(jwt, testJWTKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	oldSecret, _ := os.ReadFile(secret)
	oldJWT, _ := os.ReadFile(jwt)

	code, out, errOut := runMain("keys", "rotate-secret", "--data-dir", d.dir)
	if code != 0 || !strings.Contains(out, "rotated the secret key of "+d.dir+": re-sealed 0 secrets") {
		t.Errorf("rotate-secret: exit %d\n%s%s", code, out, errOut)
	}
	if now, _ := os.ReadFile(secret); bytes.Equal(now, oldSecret) || len(now) != 65 {
		t.Errorf("secret.key after the rotation: %q", now)
	}
	code, out, errOut = runMain("keys", "rotate-jwt", "--data-dir", d.dir)
	if code != 0 || !strings.Contains(out, "tokens of the old key stay valid until") {
		t.Errorf("rotate-jwt: exit %d\n%s%s", code, out, errOut)
	}
	if now, _ := os.ReadFile(jwt); bytes.Equal(now, oldJWT) {
		t.Error("jwt.pem was not replaced")
	}
	if prev, err := os.ReadFile(filepath.Join(d.dir, "jwt-previous.pem")); err != nil || !bytes.Contains(prev, []byte("Valid-Until:")) {
		t.Errorf("jwt-previous.pem: %q, %v", prev, err)
	}

	lock, err := lifecycle.HoldDataDir(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	for _, sub := range []string{"rotate-secret", "rotate-jwt"} {
		code, _, errOut := runMain("keys", sub, "--data-dir", d.dir)
		if code != cmdutil.ExitUsage || !strings.Contains(errOut, "stop it first") {
			t.Errorf("%s while a server holds the data dir: exit %d, %s", sub, code, errOut)
		}
	}
	code, _, errOut = runMain("keys", "rotate-jwt", "--data-dir", d.dir, "--keep", "1m")
	if code != cmdutil.ExitUsage || !strings.Contains(errOut, "shorter than a token's lifetime") {
		t.Errorf("--keep 1m: exit %d, %s", code, errOut)
	}
}
