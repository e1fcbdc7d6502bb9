package storetest

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// childEnv, when set, makes TestRequireChild call Require with the variable
// it names; unset, that test does nothing.
const childEnv = "STORETEST_REQUIRE_CHILD"

// TestRequireChild is the child of TestRequire, which runs this test binary
// again with a chosen environment.
func TestRequireChild(t *testing.T) {
	name := os.Getenv(childEnv)
	if name == "" {
		return
	}
	v := Require(t, name)
	t.Logf("Require returned %q", v)
}

// TestRequire checks Require in a child process, where it may skip or fail
// a real test: a missing variable skips outside CI and fails with CI=true,
// and a set one is returned either way.
func TestRequire(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		env      []string
		wantFail bool
		want     []string
	}{
		{"postgres missing outside CI", []string{childEnv + "=" + EnvPostgres}, false,
			[]string{"--- SKIP: TestRequireChild", "DPROXY_TEST_POSTGRES is not set: skipping this PostgreSQL test", "set DPROXY_TEST_POSTGRES='postgres://", "bash .ci/run"}},
		{"s3 missing outside CI", []string{childEnv + "=" + EnvS3, "CI=false"}, false,
			[]string{"--- SKIP: TestRequireChild", "DPROXY_TEST_S3 is not set: skipping this S3 test", "set DPROXY_TEST_S3='http://ACCESS_KEY:SECRET_KEY@", "bash .ci/run"}},
		{"postgres missing in CI", []string{childEnv + "=" + EnvPostgres, "CI=true"}, true,
			[]string{"--- FAIL: TestRequireChild", "DPROXY_TEST_POSTGRES is not set, but CI=true: CI must run this PostgreSQL test", "set DPROXY_TEST_POSTGRES="}},
		{"s3 missing in CI", []string{childEnv + "=" + EnvS3, "CI=true"}, true,
			[]string{"--- FAIL: TestRequireChild", "DPROXY_TEST_S3 is not set, but CI=true: CI must run this S3 test", "set DPROXY_TEST_S3="}},
		{"postgres set in CI", []string{childEnv + "=" + EnvPostgres, "CI=true", EnvPostgres + "=postgres://pg.invalid/db"}, false,
			[]string{"--- PASS: TestRequireChild", `Require returned "postgres://pg.invalid/db"`}},
		{"s3 set outside CI", []string{childEnv + "=" + EnvS3, EnvS3 + "=http://k:s@s3.invalid/b"}, false,
			[]string{"--- PASS: TestRequireChild", `Require returned "http://k:s@s3.invalid/b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestRequireChild$", "-test.v", "-test.count=1")
			cmd.Env = append(environWithout(EnvCI, EnvPostgres, EnvS3, childEnv), tc.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				if _, ok := errors.AsType[*exec.ExitError](err); !ok {
					t.Fatalf("run the child: %v", err)
				}
			}
			if failed := err != nil; failed != tc.wantFail {
				t.Errorf("the child failed: %v, want %v; output:\n%s", failed, tc.wantFail, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("the child's output lacks %q; output:\n%s", w, out)
				}
			}
		})
	}
}

// environWithout is os.Environ() without the variables named.
func environWithout(names ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(names, k) {
			out = append(out, kv)
		}
	}
	return out
}
