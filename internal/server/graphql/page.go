package graphql

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/dproxy/dproxy/internal/server/graphql/generated"
)

// pageSize checks `first`: nil means DefaultPageSize, else 0 to MaxPageSize.
func pageSize(first *int) (int, error) {
	if first == nil {
		return DefaultPageSize, nil
	}
	if *first < 0 || *first > MaxPageSize {
		return 0, fail(fmt.Sprintf("first must be between 0 and %d, got %d", MaxPageSize, *first))
	}
	return *first, nil
}

// Cursors are opaque to clients: base64url of "<kind>:<position>".
func encodeCursor(kind, pos string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + pos))
}

// decodeCursor returns the position of an `after` cursor of kind; "" and
// false for none.
func decodeCursor(kind string, after *string) (string, bool, error) {
	if after == nil || *after == "" {
		return "", false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*after)
	pos, ok := strings.CutPrefix(string(b), kind+":")
	if err != nil || !ok {
		return "", false, fail(fmt.Sprintf("invalid cursor %q: pass an endCursor this connection returned", clip(*after)))
	}
	return pos, true, nil
}

// pageOf cuts items, fetched with one extra item, to n and says whether
// there is a next page, with each item's cursor.
func pageOf[T any](items []T, n int, hasPrev bool, cursor func(T) string) ([]T, []string, *generated.PageInfo) {
	info := &generated.PageInfo{HasPreviousPage: hasPrev}
	if len(items) > n {
		items = items[:n]
		info.HasNextPage = true
	}
	cursors := make([]string, len(items))
	for i, it := range items {
		cursors[i] = cursor(it)
	}
	if len(cursors) > 0 {
		info.StartCursor, info.EndCursor = &cursors[0], &cursors[len(cursors)-1]
	}
	return items, cursors, info
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
