package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// process is a child process the bench started; stop ends it by its PID.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
}

// startProcess starts bin with args, its output going to dir/name.log.
func startProcess(name, dir string, env []string, bin string, args ...string) (*process, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	return &process{name: name, cmd: cmd, log: logf}, nil
}

// stop sends SIGTERM to the process, and SIGKILL when it has not exited
// within 10 s.
func (p *process) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.log.Close()
}

// peakRSS returns the process's VmHWM in MiB.
func (p *process) peakRSS() (float64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read peak RSS of %s: %w", p.name, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("read peak RSS of %s: %q: %w", p.name, line, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("read peak RSS of %s: no VmHWM line", p.name)
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls url until it answers with any HTTP status below 500.
func waitReady(ctx context.Context, p *process, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.cmd.ProcessState != nil {
			return fmt.Errorf("%s exited before it answered at %s; see %s", p.name, url, p.log.Name())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			drain(res)
			if res.StatusCode < 500 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer at %s within 30 s; see %s", p.name, url, p.log.Name())
}

// dproxyUser is the user the bench pulls through dproxy as.
const dproxyUser = "bench"

// prepareDproxy creates, in a fresh data dir, groups acme (revalidate on
// every pull) and fresh (freshness window), a guest of both, and the
// upstream credentials as the instance default. It returns the guest's
// token secret.
func prepareDproxy(ctx context.Context, dataDir string, window time.Duration, hubUser, hubPass string) (string, error) {
	cfg := config.Default()
	cfg.DataDir = dataDir
	key, err := secretbox.LoadOrCreateKey(cfg.SecretKeyPath())
	if err != nil {
		return "", fmt.Errorf("prepare dproxy data dir: %w", err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		return "", fmt.Errorf("prepare dproxy data dir: %w", err)
	}
	st, err := store.OpenSQLite(ctx, cfg.DBPath(), box)
	if err != nil {
		return "", fmt.Errorf("prepare dproxy data dir: %w", err)
	}
	defer st.Close()
	// The seeding is an operator's admin work: it goes through the admin
	// service, acting as the server itself.
	adm := admin.New(st, nil, auth.NewService(st, nil, auth.ServiceOptions{}), admin.Options{WarmEntries: st})
	sys := admin.System
	user := dproxyUser
	if _, err := adm.CreateUser(ctx, sys, admin.UserInput{Username: user}); err != nil {
		return "", fmt.Errorf("prepare dproxy data dir: %w", err)
	}
	for _, path := range []string{"acme", "fresh"} {
		if _, err := adm.CreateGroup(ctx, sys, path); err != nil {
			return "", fmt.Errorf("prepare dproxy data dir: %w", err)
		}
		if _, err := adm.SetMember(ctx, sys, path, user, admin.RoleGuest); err != nil {
			return "", fmt.Errorf("prepare dproxy data dir: %w", err)
		}
		if path == "fresh" {
			if _, err := adm.UpdateProxySetting(ctx, sys, path, admin.ProxySettingChange{FreshnessWindow: &window}); err != nil {
				return "", fmt.Errorf("prepare dproxy data dir: %w", err)
			}
		}
	}
	// S10: group warm keeps its image warm, checked every second.
	if _, err := adm.CreateGroup(ctx, sys, "warm"); err != nil {
		return "", fmt.Errorf("prepare dproxy data dir: %w", err)
	}
	if _, err := adm.SetMember(ctx, sys, "warm", user, admin.RoleGuest); err != nil {
		return "", fmt.Errorf("prepare dproxy data dir: %w", err)
	}
	if _, err := adm.AddWarmEntries(ctx, sys, "warm", []string{s10Warmed + ":" + s10Tag}, admin.WarmInput{Every: time.Second}); err != nil {
		return "", fmt.Errorf("prepare dproxy data dir: %w", err)
	}
	if _, err := adm.SetInstanceHubCredentials(ctx, sys, hubUser, hubPass); err != nil {
		return "", fmt.Errorf("prepare dproxy data dir: %w", err)
	}
	_, secret, err := adm.CreateToken(ctx, sys, admin.TokenInput{Kind: admin.TokenPersonal, Name: "bench", Username: &user,
		Scopes: []string{auth.ScopeReadRegistry}})
	if err != nil {
		return "", fmt.Errorf("prepare dproxy data dir: %w", err)
	}
	return secret, nil
}

// distributionConfig is a CNCF Distribution v3 config in proxy mode.
func distributionConfig(root, addr, remote, user, pass string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  cache:
    blobdescriptor: inmemory
http:
  addr: %s
proxy:
  remoteurl: %s
  username: %s
  password: %s
`, root, addr, remote, user, pass)
}

// nginxConfig serves root on two ports: sendfile on, then sendfile off.
func nginxConfig(dir, root, addrOn, addrOff string) string {
	return fmt.Sprintf(`daemon off;
user root;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path %[1]s/client_body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server { listen %[3]s; root %[2]s; sendfile on; tcp_nopush on; }
  server { listen %[4]s; root %[2]s; sendfile off; }
}
`, dir, root, addrOn, addrOff)
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// processCPU returns the CPU time (user + system) p and its direct
// children (nginx's workers) have used so far, or 0 when it cannot be read
// (the bench then reports 0 rather than failing).
func processCPU(p *process) time.Duration {
	if p == nil || p.cmd.Process == nil {
		return 0
	}
	pid := p.cmd.Process.Pid
	total, _, ok := pidCPU(pid)
	if !ok {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if cpu, parent, ok := pidCPU(child); ok && parent == pid {
			total += cpu
		}
	}
	return total
}

// pidCPU reads the CPU time (user + system) and parent of a process.
func pidCPU(pid int) (cpu time.Duration, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces: the fields start after its ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, 0, false
	}
	ppid, err0 := strconv.Atoi(fields[1])
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err0 != nil || err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, ppid, true
}

// selfCPU returns the CPU time (user + system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
