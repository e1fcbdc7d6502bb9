package graphql

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/model"
)

func TestCursors(t *testing.T) {
	t.Parallel()
	c := encodeCursor("m", "42")
	if pos, ok, err := decodeCursor("m", &c); pos != "42" || !ok || err != nil {
		t.Errorf("decode own cursor = %q, %v, %v", pos, ok, err)
	}
	if _, _, err := decodeCursor("b", &c); err == nil {
		t.Error("a manifest cursor was accepted for blobs")
	}
	bad := "!!!"
	if _, _, err := decodeCursor("m", &bad); err == nil {
		t.Error("garbage accepted as a cursor")
	}
	if _, ok, err := decodeCursor("m", nil); ok || err != nil {
		t.Errorf("no cursor = %v, %v", ok, err)
	}
	for _, first := range []int{-1, MaxPageSize + 1} {
		if _, err := pageSize(&first); err == nil {
			t.Errorf("pageSize(%d) accepted", first)
		}
	}
	if n, err := pageSize(nil); n != DefaultPageSize || err != nil {
		t.Errorf("pageSize(nil) = %d, %v", n, err)
	}
}

func TestBigInt(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	model.BigInt(1 << 40).MarshalGQL(&buf)
	if buf.String() != `"1099511627776"` {
		t.Errorf("marshal = %s, want a quoted decimal", buf.String())
	}
	for _, c := range []struct {
		in   any
		want model.BigInt
		ok   bool
	}{
		{"12", 12, true}, {int64(7), 7, true}, {"x", 0, false}, {1.5, 0, false},
	} {
		var b model.BigInt
		err := b.UnmarshalGQL(c.in)
		if (err == nil) != c.ok || b != c.want {
			t.Errorf("unmarshal %v = %d, %v", c.in, b, err)
		}
	}
}

func TestParseGID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{gid(gidToken, 7), 7, true}, {"7", 7, true}, {gid(gidGroup, 7), 0, false}, {"0", 0, false}, {"-3", 0, false}, {"", 0, false},
	} {
		n, ok := parseGID(gidToken, c.in)
		if ok != c.ok || (ok && n != c.want) {
			t.Errorf("parseGID(%q) = %d, %v", c.in, n, ok)
		}
	}
}

// TestErrorPlacement checks where admin errors go: refusals of an allowed
// operation to a payload's errors, other refusals to the top-level errors
// with their message, internal failures to the top-level errors without
// their text.
func TestErrorPlacement(t *testing.T) {
	t.Parallel()
	refused := &admin.Error{Kind: admin.ErrConflict, Message: `group "acme" already exists`, Refused: true}
	denied := &admin.Error{Kind: admin.ErrForbidden, Message: "deleting the group of acme needs the owner role; you are guest"}
	internal := fmt.Errorf("delete group 7: %w", errors.New("database is locked"))
	if msgs, ok := refusal(refused); !ok || len(msgs) != 1 || msgs[0] != refused.Message {
		t.Errorf("refusal(refused) = %q, %v", msgs, ok)
	}
	for _, err := range []error{denied, internal, nil} {
		if msgs, ok := refusal(err); ok {
			t.Errorf("refusal(%v) = %q; want a top-level error", err, msgs)
		}
	}
	h := New(nil, Options{})
	for _, c := range []struct {
		err  error
		want string
	}{
		{denied, denied.Message},
		{fmt.Errorf("wrapped: %w", denied), denied.Message},
		{fail("first must be between 0 and 100, got 101"), "first must be between 0 and 100, got 101"},
		{internal, "internal error; the server log has the details"},
	} {
		if got := h.presentError(t.Context(), c.err).Message; got != c.want {
			t.Errorf("presentError(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
