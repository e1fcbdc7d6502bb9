package app_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// benchBlobSize is the blob size of the throughput benchmarks: 1 GiB, or
// DPROXY_BENCH_BLOB_MB MiB.
func benchBlobSize(b *testing.B) int64 {
	if s := os.Getenv("DPROXY_BENCH_BLOB_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("DPROXY_BENCH_BLOB_MB=%q: want a positive number of MiB", s)
		}
		return int64(n) << 20
	}
	return 1 << 30
}

// BenchmarkCachedBlob measures serving a cached blob over loopback HTTP
// against reading the same file from disk, in the same run.
func BenchmarkCachedBlob(b *testing.B) {
	e := newEnv(b, envOptions{})
	fx := e.aliceBlob("big", benchBlobSize(b))
	d, realSize, jwt := fx.digest, fx.size, fx.jwt
	url := e.srv.URL + fx.path
	get := func() int64 {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		n, err := io.CopyBuffer(io.Discard, res.Body, make([]byte, 256<<10))
		if err != nil || n != realSize {
			b.Fatalf("read %d of %d bytes: %v", n, realSize, err)
		}
		return n
	}
	get() // fills the cache
	waitFor(b, "blob to be committed", func() bool { return e.app.Cache.InFlight() == 0 })
	path := e.app.Blobs.(*blobstore.FS).Path(oci.Digest(d.String()))

	b.Run("dproxy-1-client", func(b *testing.B) {
		b.SetBytes(realSize)
		for b.Loop() {
			get()
		}
	})
	b.Run("dproxy-4-clients", func(b *testing.B) {
		b.SetBytes(4 * realSize)
		for b.Loop() {
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() { get() })
			}
			wg.Wait()
		}
	})
	b.Run("disk-read-reference", func(b *testing.B) {
		b.SetBytes(realSize)
		buf := make([]byte, 256<<10)
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(io.Discard, readerOnly{f}, buf)
			f.Close()
			if err != nil || n != realSize {
				b.Fatalf("disk read %d: %v", n, err)
			}
		}
	})
}

// BenchmarkColdBlobPeakRSS runs `dproxy serve` as a process, has 4 clients
// pull a cold blob through it at once, and reports the server's peak RSS.
func BenchmarkColdBlobPeakRSS(b *testing.B) {
	size := benchBlobSize(b)
	up := testregistry.New(b, testregistry.Options{})
	img := up.PushRandomImage(b, "library/big", "v1", 1, size)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	realSize, _ := layers[0].Size()
	var peak float64
	for b.Loop() {
		dir := b.TempDir()
		secret := prepareDataDir(b, dir)
		cmd, base := serveProcess(b, dir, up.URL)
		repo := "acme/dependency_proxy/containers/big"
		tok := fetchJWT(b, base, "alice", secret, repo)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodGet, base+"/v2/"+repo+"/blobs/"+d.String(), nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				defer res.Body.Close()
				if n, err := io.Copy(io.Discard, res.Body); err != nil || n != realSize {
					b.Errorf("read %d of %d: %v", n, realSize, err)
				}
			})
		}
		wg.Wait()
		hwm := vmHWM(b, cmd.Process.Pid)
		if hwm > peak {
			peak = hwm
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	b.SetBytes(realSize)
	b.ReportMetric(peak, "peak-RSS-MiB")
}

// vmHWM reads a process's peak resident set size in MiB.
func vmHWM(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }
