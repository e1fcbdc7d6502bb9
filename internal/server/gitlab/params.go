package gitlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dproxy/dproxy/internal/admin"
)

// params are a request's parameters as GitLab reads them: the fields of a
// JSON object body (Content-Type application/json, or no Content-Type),
// else of a form body, and the query string. A body field wins over a
// query parameter of the same name. Parameters GitLab does not declare are
// ignored, as GitLab ignores them.
type params struct {
	body  map[string]json.RawMessage
	query url.Values
}

// paramsOf reads a request's parameters. A body that is not what its
// Content-Type says is refused with admin.ErrInvalid; one over the
// server's limit with the *http.MaxBytesError.
func paramsOf(r *http.Request) (params, error) {
	p := params{query: r.URL.Query()}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case ct == "application/x-www-form-urlencoded" || ct == "multipart/form-data":
		if err := r.ParseMultipartForm(1 << 20); err != nil && err != http.ErrNotMultipart {
			return params{}, bodyError(err, "the form body cannot be read")
		}
		p.query = r.Form // the form's fields first, then the query's
		return p, nil
	case ct != "" && ct != "application/json" && !strings.HasSuffix(ct, "+json"):
		return params{}, invalid("Content-Type %q is not supported: send the parameters as JSON (application/json), a form, or in the query string", ct)
	}
	if r.Body == nil {
		return p, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return params{}, bodyError(err, "the body cannot be read")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(b, &p.body); err != nil || p.body == nil {
		return params{}, invalid("the body is not a JSON object: send the parameters as {\"name\": value, …}")
	}
	return p, nil
}

// bodyError keeps a *http.MaxBytesError for the 413 and says what went
// wrong otherwise.
func bodyError(err error, what string) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return err
	}
	return invalid("%s: %v", what, err)
}

// raw returns a parameter's JSON value, or its text from a form or the
// query string (isText), and whether it was given.
func (p params) raw(name string) (v json.RawMessage, text string, isText, ok bool) {
	if v, ok := p.body[name]; ok {
		return v, "", false, true
	}
	if vs, ok := p.query[name]; ok && len(vs) > 0 {
		return nil, vs[0], true, true
	}
	return nil, "", false, false
}

// String returns a string parameter, nil when it was not given. A JSON
// null is the empty string (GitLab clears the field).
func (p params) String(name string) (*string, error) {
	v, text, isText, ok := p.raw(name)
	switch {
	case !ok:
		return nil, nil
	case isText:
		return &text, nil
	case string(v) == "null":
		s := ""
		return &s, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, invalid("%s is invalid: it must be a string", name)
	}
	return &s, nil
}

// Int returns an integer parameter, nil when it was not given. As GitLab,
// it takes a JSON number or a string of digits.
func (p params) Int(name string) (*int64, error) {
	v, text, isText, ok := p.raw(name)
	if !ok {
		return nil, nil
	}
	if !isText {
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return nil, invalid("%s is invalid: it must be a whole number", name)
			}
			n = json.Number(s)
		}
		text = n.String()
	}
	n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil {
		return nil, invalid("%s is invalid: it must be a whole number", name)
	}
	return &n, nil
}

// required refuses a request that lacks any of the parameters named, as
// GitLab does: "name is missing, url is missing".
func (p params) required(names ...string) error {
	var missing []string
	for _, n := range names {
		if _, _, _, ok := p.raw(n); !ok {
			missing = append(missing, n+" is missing")
		}
	}
	if len(missing) > 0 {
		return invalid("%s", strings.Join(missing, ", "))
	}
	return nil
}

// atLeastOne refuses a request that gives none of the parameters named,
// in GitLab's words.
func (p params) atLeastOne(names ...string) error {
	for _, n := range names {
		if _, _, _, ok := p.raw(n); ok {
			return nil
		}
	}
	return invalid("%s are missing, at least one parameter must be provided", strings.Join(names, ", "))
}

// pathID parses the numeric :id of a path, naming what it identifies when
// it is not one.
func pathID(r *http.Request, what string) (int64, error) {
	s := r.PathValue("id")
	n, ok := number(s)
	if !ok {
		return 0, invalid("id is invalid: %q is not the numeric id of a %s", clip(s), what)
	}
	return n, nil
}

// intParam narrows an optional integer parameter to an int.
func intParam(name string, n *int64) (*int, error) {
	if n == nil {
		return nil, nil
	}
	if *n > 1<<31-1 || *n < -(1<<31) {
		return nil, invalid("%s is invalid: %d is out of range", name, *n)
	}
	v := int(*n)
	return &v, nil
}

// invalid is a refusal of the request's input (400).
func invalid(format string, args ...any) error {
	return &admin.Error{Kind: admin.ErrInvalid, Message: fmt.Sprintf(format, args...), Refused: true}
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
