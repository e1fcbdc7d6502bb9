package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
)

func TestNewCmdFsck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want fsckOptions
	}{
		{name: "check only", args: []string{"--data-dir", "/srv/dproxy"},
			want: fsckOptions{DataDir: "/srv/dproxy", DataDirSet: true}},
		{name: "repair", args: []string{"--data-dir", "d", "--repair"},
			want: fsckOptions{DataDir: "d", DataDirSet: true, Repair: true}},
		{name: "verify content and repair", args: []string{"--verify-content", "--repair", "--data-dir=d"},
			want: fsckOptions{DataDir: "d", DataDirSet: true, Repair: true, VerifyContent: true}},
		{name: "the server's config", args: []string{"--config", "/etc/dproxy/dproxy.yaml", "--verify-content"},
			want: fsckOptions{DataDir: defaultDataDir(), ConfigFile: "/etc/dproxy/dproxy.yaml", VerifyContent: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ios := parseFlags(t, newCmdFsck, tt.args...)
			if got.IO != ios {
				t.Errorf("the options do not carry the command's streams")
			}
			got.IO = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("fsck %v: options %+v, want %+v", tt.args, *got, tt.want)
			}
		})
	}
}

// TestUsageErrors checks that every usage mistake exits 2 with one line on
// stderr that says what was wrong, before anything runs.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	noDB := t.TempDir()
	existing := filepath.Join(t.TempDir(), "exists.tar.gz")
	if err := os.WriteFile(existing, []byte("an older backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string // in the one line of stderr
	}{
		{"fsck unknown flag", []string{"fsck", "--fix"}, "unknown flag: --fix (see 'dproxy fsck --help')"},
		{"fsck argument", []string{"fsck", "/var/lib/dproxy"}, `dproxy fsck takes no arguments, got "/var/lib/dproxy"`},
		{"fsck without a database", []string{"fsck", "--data-dir", noDB}, "no dproxy database in " + noDB},
		{"backup unknown verb", []string{"backup", "make"}, `unknown command "make" for "dproxy backup" (see 'dproxy backup --help')`},
		{"backup create argument", []string{"backup", "create", "out.tar"}, "dproxy backup create takes no arguments"},
		{"backup create without a database", []string{"backup", "create", "--data-dir", noDB, "--file", filepath.Join(t.TempDir(), "b.tar")},
			"no dproxy database in " + noDB},
		{"backup create over a file", []string{"backup", "create", "--data-dir", noDB, "--file", existing},
			existing + " already exists: choose another --file"},
		{"backup create -o a path", []string{"backup", "create", "--data-dir", noDB, "-o", existing},
			"-o selects the output format (table or json), not the archive: name the archive with --file " + existing},
		{"backup create json to stdout", []string{"backup", "create", "--data-dir", noDB, "--file", "-", "-o", "json"},
			"--file - writes the archive to stdout: -o json has no room there"},
		{"fsck unknown output", []string{"fsck", "--data-dir", noDB, "-o", "yaml"}, `-o: unknown output format "yaml"`},
		{"backup restore without archive", []string{"backup", "restore", "--data-dir", t.TempDir()},
			"dproxy backup restore takes one backup archive, got 0 arguments"},
		{"backup restore two archives", []string{"backup", "restore", "a.tar", "b.tar", "--data-dir", t.TempDir()},
			"got 2 arguments"},
		{"backup restore without data dir", []string{"backup", "restore", "a.tar"}, "required flag --data-dir is missing"},
		{"backup restore missing archive", []string{"backup", "restore", filepath.Join(noDB, "none.tar"), "--data-dir", t.TempDir()},
			"open backup archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runMain(tt.args...)
			if code != cmdutil.ExitUsage {
				t.Errorf("dproxy %v exited %d, want %d; stderr:\n%s", tt.args, code, cmdutil.ExitUsage, errOut)
			}
			if lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(errOut, "dproxy: ") {
				t.Errorf("dproxy %v: stderr is not one \"dproxy: \" line:\n%s", tt.args, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("dproxy %v: stderr %q does not say %q", tt.args, errOut, tt.want)
			}
			if out != "" {
				t.Errorf("dproxy %v wrote to stdout: %q", tt.args, out)
			}
		})
	}
	if b, err := os.ReadFile(existing); err != nil || string(b) != "an older backup" {
		t.Errorf("a refused backup create changed the existing file: %q, %v", b, err)
	}
	if left, _ := os.ReadDir(noDB); len(left) != 0 {
		t.Errorf("a refused command wrote into the data dir: %v", left)
	}
}

func TestFsckRun(t *testing.T) {
	t.Parallel()
	// damage breaks a fresh data dir holding two good blobs and returns the
	// finding lines fsck must print (kind and name).
	type damage func(t *testing.T, d *dataDir) (finding string)
	missing := func(t *testing.T, d *dataDir) string {
		dg := d.blob(t, 100, true)
		if err := os.Remove(d.files.Path(dg)); err != nil {
			t.Fatal(err)
		}
		return "missing-file\t" + string(dg)
	}
	truncated := func(t *testing.T, d *dataDir) string {
		dg := d.blob(t, 100, true)
		if err := os.Truncate(d.files.Path(dg), 10); err != nil {
			t.Fatal(err)
		}
		return "corrupt-file\t" + string(dg)
	}
	orphan := func(t *testing.T, d *dataDir) string {
		dg := d.blob(t, 100, false)
		age(t, d.files.Path(dg))
		return "orphan-file\t" + string(dg)
	}
	temp := func(t *testing.T, d *dataDir) string {
		return "temp-file\t" + d.tempFile(t)
	}
	tests := []struct {
		name     string
		damage   damage
		repair   bool
		wantCode int
		state    string // of the finding
		summary  string
	}{
		{name: "clean", wantCode: cmdutil.ExitOK, summary: "checked 2 cached blobs, 2 blob files, 0 temp files: 0 problems, 0 repaired"},
		{name: "missing file", damage: missing, wantCode: cmdutil.ExitFailure, state: "found",
			summary: "checked 3 cached blobs, 2 blob files, 0 temp files: 1 problems, 0 repaired"},
		{name: "missing file repaired", damage: missing, repair: true, wantCode: cmdutil.ExitOK, state: "repaired",
			summary: "1 problems, 1 repaired"},
		{name: "truncated file", damage: truncated, wantCode: cmdutil.ExitFailure, state: "found", summary: "1 problems, 0 repaired"},
		{name: "truncated file repaired", damage: truncated, repair: true, wantCode: cmdutil.ExitOK, state: "repaired", summary: "1 problems, 1 repaired"},
		{name: "orphan file", damage: orphan, wantCode: cmdutil.ExitFailure, state: "found",
			summary: "checked 2 cached blobs, 3 blob files, 0 temp files: 1 problems, 0 repaired"},
		{name: "orphan file repaired", damage: orphan, repair: true, wantCode: cmdutil.ExitOK, state: "repaired", summary: "1 problems, 1 repaired"},
		{name: "temp file", damage: temp, wantCode: cmdutil.ExitFailure, state: "found",
			summary: "checked 2 cached blobs, 2 blob files, 1 temp files: 1 problems, 0 repaired"},
		{name: "temp file repaired", damage: temp, repair: true, wantCode: cmdutil.ExitOK, state: "repaired", summary: "1 problems, 1 repaired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDataDir(t)
			good := []oci.Digest{d.blob(t, 300, true), d.blob(t, 200, true)}
			var finding string
			if tt.damage != nil {
				finding = tt.damage(t, d)
			}
			before := listDir(t, d.blobDir())
			ios, out, _ := testIO()
			err := runFsck(context.Background(), &fsckOptions{IO: ios, DataDir: d.dir, Repair: tt.repair})
			if code := cmdutil.ExitCode(err); code != tt.wantCode {
				t.Fatalf("fsck exited %d (%v), want %d; output:\n%s", code, err, tt.wantCode, out)
			}
			if !strings.Contains(out.String(), tt.summary) {
				t.Errorf("output lacks the summary %q:\n%s", tt.summary, out)
			}
			if finding != "" && !strings.Contains(out.String(), finding+"\t"+tt.state+"\t") {
				t.Errorf("output lacks the finding %q (%s):\n%s", finding, tt.state, out)
			}
			if n := strings.Count(out.String(), "\n"); n != 1+min(1, len(finding)) {
				t.Errorf("%d output lines, want one per finding and the summary:\n%s", n, out)
			}
			if tt.wantCode == cmdutil.ExitFailure && !strings.Contains(err.Error(), "run again with --repair") {
				t.Errorf("the failure %q does not say how to repair", err)
			}
			for _, dg := range good {
				if !d.referenced(t, dg) || !d.hasFile(dg) {
					t.Errorf("fsck lost the good blob %s", dg)
				}
			}
			after := listDir(t, d.blobDir())
			if !tt.repair && fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("fsck without --repair changed the blob folder:\nbefore %v\nafter  %v", before, after)
			}
			if !tt.repair {
				return
			}
			// A repaired data dir is clean: a second fsck finds nothing.
			ios, out, _ = testIO()
			if err := runFsck(context.Background(), &fsckOptions{IO: ios, DataDir: d.dir}); err != nil {
				t.Errorf("fsck after --repair: %v\n%s", err, out)
			}
			if !strings.Contains(out.String(), ": 0 problems, 0 repaired") {
				t.Errorf("fsck after --repair still finds problems:\n%s", out)
			}
		})
	}
}

// A temp file of any age is a leftover when no server holds the data dir;
// while one does, a recent one may be a download in progress.
func TestFsckTempFilesAndRunningServer(t *testing.T) {
	t.Parallel()
	d := newDataDir(t)
	tmp, err := d.files.CreateTemp()
	if err != nil {
		t.Fatal(err)
	}
	tmp.WriteString("a download that was just cut")
	tmp.Close()
	name := filepath.Base(tmp.Name())

	server, err := lifecycle.HoldDataDir(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	ios, out, errOut := testIO()
	if err := runFsck(context.Background(), &fsckOptions{IO: ios, DataDir: d.dir, Repair: true}); err != nil {
		t.Fatalf("fsck beside a server: %v\n%s", err, out)
	}
	if strings.Contains(out.String(), name) || !strings.Contains(errOut.String(), "server is using this data dir") {
		t.Errorf("fsck beside a server touched a new temp file or did not say why it spared it:\n%s%s", out, errOut)
	}
	server.Unlock()

	ios, out, _ = testIO()
	if err := runFsck(context.Background(), &fsckOptions{IO: ios, DataDir: d.dir, Repair: true}); err != nil {
		t.Fatalf("fsck alone: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), "temp-file\t"+name+"\trepaired") {
		t.Errorf("fsck with no server did not remove the new temp file %s:\n%s", name, out)
	}
}

// fsck -o json prints the report as one JSON object, also when problems
// are left unrepaired (exit 1 then, as in table form).
func TestFsckJSON(t *testing.T) {
	t.Parallel()
	d := newDataDir(t)
	d.blob(t, 300, true)
	missing := d.blob(t, 100, true)
	if err := os.Remove(d.files.Path(missing)); err != nil {
		t.Fatal(err)
	}
	ios, out, _ := testIO()
	err := runFsck(context.Background(), &fsckOptions{IO: ios, DataDir: d.dir, Output: "json"})
	if cmdutil.ExitCode(err) != cmdutil.ExitFailure {
		t.Fatalf("fsck -o json with a missing file: %v, want exit 1", err)
	}
	var got fsckResult
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	want := fsckResult{DataDir: d.dir, ReferencedBlobs: 2, BlobFiles: 1, Problems: 1,
		Findings: []fsckFinding{{Kind: "missing-file", Digest: string(missing), Detail: "referenced but the file is missing"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fsck -o json =\n%+v\nwant\n%+v", got, want)
	}
}
