package testregistry

import "net/http"

// HideBlobLength makes the front answer GETs of blob d without a
// Content-Length: the body is sent chunked and its size is known only at
// its end, as some registries and proxies do. Off restores the header. The
// CDN of RedirectBlobs is not affected.
func (u *Upstream) HideBlobLength(d string, on bool) {
	u.set(func() {
		if u.unsized == nil {
			u.unsized = map[string]bool{}
		}
		u.unsized[d] = on
	})
}

// blobWriter returns the writer a GET of blob d is answered through: w
// itself, or one that drops the Content-Length when HideBlobLength says so.
func (u *Upstream) blobWriter(w http.ResponseWriter, d string) http.ResponseWriter {
	u.mu.Lock()
	hide := u.unsized[d]
	u.mu.Unlock()
	if !hide {
		return w
	}
	return unsizedWriter{w}
}

// unsizedWriter drops the Content-Length set by the handler and sends the
// headers at once, so the body cannot be sized by the server either: it
// goes out chunked.
type unsizedWriter struct{ http.ResponseWriter }

func (w unsizedWriter) WriteHeader(status int) {
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(status)
	w.Flush()
}

func (w unsizedWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w unsizedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
