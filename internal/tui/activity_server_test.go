package tui

import (
	"io"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/muesli/termenv"
)

// The activity screen on a real server during a cold pull: the upstream
// is throttled and holds the layer half way, two clients stream it, and
// the screen (refreshing by itself) shows the download at 50% with its
// two clients; once the upstream lets go it shows the download gone and
// the pulls as misses, and the header counts them.
func TestActivityOnARealServerDuringAColdPull(t *testing.T) {
	t.Parallel()
	s, c := cachedServer(t)
	img := s.Upstream.PushRandomImage(t, "library/big", "latest", 1, 1<<20)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, _ := layers[0].Digest()
	lsize, _ := layers[0].Size()
	half := lsize / 2
	s.Upstream.SetBandwidth(4 << 20)
	hold := s.Upstream.HoldBlob(ld.String(), half)
	defer hold.Release()

	done := make(chan error, 2)
	for range 2 {
		go func() { done <- fetchLayer(s.Host, s.AdminToken, "acme", "big", ld.String()) }()
	}
	<-hold.Reached()

	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	tm := teatest.NewTestModel(t, New(c, r, Options{LiveEvery: 20 * time.Millisecond, StartActivity: true}),
		teatest.WithInitialTermSize(140, 40))
	// The download's row: image, digest, group, bar and percentage,
	// bytes of total, a rate, two clients (the second may join after the
	// screen first draws: the screen follows by itself), elapsed time.
	pct := int(float64(half) / float64(lsize) * 100)
	row := regexp.MustCompile(`library/big +` + ld.Hex[:12] + ` +acme +█+░+ +` + strconv.Itoa(pct) + `% +` +
		regexp.QuoteMeta(size(half)+"/"+size(lsize)) + ` +[0-9.]+ [KM]?i?B/s +2 +[0-9]+s`)
	teatest.WaitFor(t, tm.Output(), row.Match, teatest.WithDuration(30*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
	hold.Release()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	s.WaitDownloads(t)
	waitOutput(t, tm, "Downloads in flight (0)", "miss   blob     library/big@"+ld.String()[:len("sha256:")+12])
	screen := finalView(t, tm)
	mustContain(t, screen, "upstream pulls saved", "Recent pulls")
}

// fetchLayer reads blob d of image in group through dproxy as the admin.
func fetchLayer(host, token, group, image, d string) error {
	ref, err := name.NewDigest(host+"/"+group+"/dependency_proxy/containers/"+image+"@"+d, name.Insecure)
	if err != nil {
		return err
	}
	l, err := remote.Layer(ref, remote.WithAuth(&authn.Basic{Username: "admin", Password: token}))
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}
