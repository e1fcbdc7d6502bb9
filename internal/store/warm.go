package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// States of a warm entry's last check.
const (
	WarmPending   = "pending"   // not checked yet
	WarmCurrent   = "current"   // the tag has not moved since it was warmed
	WarmWarmed    = "warmed"    // the tag moved and its new content was fetched
	WarmReserve   = "reserve"   // the tag moved; no pull spent to keep the rate-limit reserve
	WarmSizeCap   = "size-cap"  // the tag moved; not fetched, it would pass the size cap
	WarmFailed    = "failed"    // the upstream failed or refused
	WarmThrottled = "throttled" // the upstream answered 429; backing off
)

// WarmEntry is a tag a group's dependency proxy keeps warm.
type WarmEntry struct {
	ID      int64
	GroupID int64
	// Image is the upstream repository ("library/node").
	Image string
	Tag   string
	// Platforms are "os/arch[/variant]" values; none means the platforms
	// pulled recently, else linux/amd64.
	Platforms []string
	Every     time.Duration
	// Auto is true for an entry chosen from pull statistics (WarmAuto).
	Auto      bool
	CreatedAt time.Time
	// The last check: when, the digest the tag pointed at, its state
	// (Warm* constants) and a message for people.
	CheckedAt *time.Time
	Digest    string
	State     string
	Message   string
	NextAt    time.Time
}

// WarmCheck is the outcome of one check of an entry.
type WarmCheck struct {
	CheckedAt time.Time
	Digest    string // "" keeps the digest of the previous check
	State     string
	Message   string
	NextAt    time.Time
}

// WarmAuto is a group's setting to keep its Top most pulled tags of the
// last Window warm.
type WarmAuto struct {
	GroupID     int64
	Top         int
	Window      time.Duration
	Every       time.Duration
	Platforms   []string
	RefreshedAt *time.Time
}

// TagPull counts pulls of a group's tag on a UTC day.
type TagPull struct {
	GroupID    int64
	Image, Tag string
	Day        time.Time
	Pulls      int64
}

// PulledTag is a tag with its pulls in a window.
type PulledTag struct {
	Image, Tag string
	Pulls      int64
}

const warmColumns = `id, group_id, image, tag, platforms, every_seconds, auto, created_at, checked_at, digest, state, message, next_at`

func scanWarmEntry(sc interface{ Scan(...any) error }) (WarmEntry, error) {
	var (
		e         WarmEntry
		platforms string
		every     int64
		checked   sql.NullTime
	)
	if err := sc.Scan(&e.ID, &e.GroupID, &e.Image, &e.Tag, &platforms, &every, &e.Auto, &e.CreatedAt,
		&checked, &e.Digest, &e.State, &e.Message, &e.NextAt); err != nil {
		return WarmEntry{}, err
	}
	e.Platforms = splitList(platforms)
	e.Every = time.Duration(every) * time.Second
	e.CreatedAt, e.NextAt = e.CreatedAt.UTC(), e.NextAt.UTC()
	if checked.Valid {
		t := checked.Time.UTC()
		e.CheckedAt = &t
	}
	return e, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func joinList(l []string) string { return strings.Join(l, ",") }

func (s *Store) warmEntries(ctx context.Context, what, query string, args ...any) ([]WarmEntry, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []WarmEntry
	for rows.Next() {
		e, err := scanWarmEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// WarmEntries returns a group's warm entries by image and tag.
func (s *Store) WarmEntries(ctx context.Context, groupID int64) ([]WarmEntry, error) {
	return s.warmEntries(ctx, fmt.Sprintf("list warm entries of group %d", groupID),
		`SELECT `+warmColumns+` FROM warm_entries WHERE group_id = $1 ORDER BY image, tag`, groupID)
}

// DueWarmEntries returns up to limit entries of every group due at or
// before at, the longest due first.
func (s *Store) DueWarmEntries(ctx context.Context, at time.Time, limit int) ([]WarmEntry, error) {
	return s.warmEntries(ctx, "list due warm entries",
		`SELECT `+warmColumns+` FROM warm_entries WHERE next_at <= $1 ORDER BY next_at, id LIMIT $2`,
		dbTime(at), listLimit(limit))
}

// CountWarmEntries returns the number of warm entries of all groups.
func (s *Store) CountWarmEntries(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM warm_entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count warm entries: %w", err)
	}
	return n, nil
}

// NextWarmDue returns the earliest next_at of all entries; ok is false
// when there is none.
func (s *Store) NextWarmDue(ctx context.Context) (at time.Time, ok bool, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT next_at FROM warm_entries ORDER BY next_at LIMIT 1`).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read the next due warm entry: %w", err)
	}
	return at.UTC(), true, nil
}

// PutWarmEntry adds e (GroupID, Image, Tag, Platforms, Every, Auto), due
// now, or changes the platforms and interval of the entry of the same tag
// and makes it due now. Changing an entry makes it manual unless e.Auto.
// An unknown group is an error wrapping ErrNotFound.
func (s *Store) PutWarmEntry(ctx context.Context, e WarmEntry) (WarmEntry, error) {
	now := dbTime(s.now())
	row := s.w.QueryRowContext(ctx, `INSERT INTO warm_entries (group_id, image, tag, platforms, every_seconds, auto, created_at, next_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
		ON CONFLICT (group_id, image, tag) DO UPDATE SET platforms = excluded.platforms,
			every_seconds = excluded.every_seconds, auto = excluded.auto, next_at = excluded.next_at
		RETURNING `+warmColumns,
		e.GroupID, e.Image, e.Tag, joinList(e.Platforms), int64(e.Every/time.Second), e.Auto, now)
	out, err := scanWarmEntry(row)
	if s.isForeignKey(err) {
		return WarmEntry{}, fmt.Errorf("add warm entry %s:%s: group %d: %w", e.Image, e.Tag, e.GroupID, ErrNotFound)
	}
	if err != nil {
		return WarmEntry{}, fmt.Errorf("add warm entry %s:%s of group %d: %w", e.Image, e.Tag, e.GroupID, err)
	}
	return out, nil
}

// DeleteWarmEntry removes a group's entry of image:tag. A missing one is
// an error wrapping ErrNotFound.
func (s *Store) DeleteWarmEntry(ctx context.Context, groupID int64, image, tag string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM warm_entries WHERE group_id = $1 AND image = $2 AND tag = $3`, groupID, image, tag)
	return affected(res, err, fmt.Sprintf("remove warm entry %s:%s of group %d", image, tag, groupID))
}

// RecordWarmCheck stores the outcome of a check of entry id. A missing
// entry (removed meanwhile) is an error wrapping ErrNotFound.
func (s *Store) RecordWarmCheck(ctx context.Context, id int64, c WarmCheck) error {
	res, err := s.w.ExecContext(ctx, `UPDATE warm_entries SET checked_at = $1,
		digest = CASE WHEN $2 = '' THEN digest ELSE $2 END, state = $3, message = $4, next_at = $5 WHERE id = $6`,
		dbTime(c.CheckedAt), c.Digest, c.State, c.Message, dbTime(c.NextAt), id)
	return affected(res, err, fmt.Sprintf("record check of warm entry %d", id))
}

// MakeWarmDue makes a group's entries due at at: all of them, or the one
// of image:tag when image is not "". It returns how many it changed.
func (s *Store) MakeWarmDue(ctx context.Context, groupID int64, image, tag string, at time.Time) (int64, error) {
	var (
		res sql.Result
		err error
	)
	if image == "" {
		res, err = s.w.ExecContext(ctx, `UPDATE warm_entries SET next_at = $1 WHERE group_id = $2`, dbTime(at), groupID)
	} else {
		res, err = s.w.ExecContext(ctx, `UPDATE warm_entries SET next_at = $1 WHERE group_id = $2 AND image = $3 AND tag = $4`,
			dbTime(at), groupID, image, tag)
	}
	if err != nil {
		return 0, fmt.Errorf("make warm entries of group %d due: %w", groupID, err)
	}
	return res.RowsAffected()
}

// SetWarmAuto sets a group's auto-top setting; it is refreshed at the
// next run of the warmer. An unknown group is an error wrapping ErrNotFound.
func (s *Store) SetWarmAuto(ctx context.Context, a WarmAuto) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO warm_auto (group_id, top, window_seconds, every_seconds, platforms, refreshed_at)
		VALUES ($1, $2, $3, $4, $5, NULL)
		ON CONFLICT (group_id) DO UPDATE SET top = excluded.top, window_seconds = excluded.window_seconds,
			every_seconds = excluded.every_seconds, platforms = excluded.platforms, refreshed_at = NULL`,
		a.GroupID, a.Top, int64(a.Window/time.Second), int64(a.Every/time.Second), joinList(a.Platforms))
	if s.isForeignKey(err) {
		return fmt.Errorf("set auto warm of group %d: %w", a.GroupID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set auto warm of group %d: %w", a.GroupID, err)
	}
	return nil
}

// DeleteWarmAuto removes a group's auto-top setting and its auto entries.
// A group without one is an error wrapping ErrNotFound.
func (s *Store) DeleteWarmAuto(ctx context.Context, groupID int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM warm_auto WHERE group_id = $1`, groupID)
		if err := affected(res, err, fmt.Sprintf("remove auto warm of group %d", groupID)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM warm_entries WHERE group_id = $1 AND auto`, groupID); err != nil {
			return fmt.Errorf("remove auto warm entries of group %d: %w", groupID, err)
		}
		return nil
	})
}

const warmAutoColumns = `group_id, top, window_seconds, every_seconds, platforms, refreshed_at`

func scanWarmAuto(sc interface{ Scan(...any) error }) (WarmAuto, error) {
	var (
		a             WarmAuto
		window, every int64
		platforms     string
		refreshed     sql.NullTime
	)
	if err := sc.Scan(&a.GroupID, &a.Top, &window, &every, &platforms, &refreshed); err != nil {
		return WarmAuto{}, err
	}
	a.Window, a.Every = time.Duration(window)*time.Second, time.Duration(every)*time.Second
	a.Platforms = splitList(platforms)
	if refreshed.Valid {
		t := refreshed.Time.UTC()
		a.RefreshedAt = &t
	}
	return a, nil
}

// WarmAuto returns a group's auto-top setting, or an error wrapping
// ErrNotFound.
func (s *Store) WarmAuto(ctx context.Context, groupID int64) (WarmAuto, error) {
	a, err := scanWarmAuto(s.r.QueryRowContext(ctx, `SELECT `+warmAutoColumns+` FROM warm_auto WHERE group_id = $1`, groupID))
	if err != nil {
		return WarmAuto{}, notFound(err, fmt.Sprintf("auto warm of group %d", groupID))
	}
	return a, nil
}

// StaleWarmAutos returns the auto-top settings not refreshed since before.
func (s *Store) StaleWarmAutos(ctx context.Context, before time.Time) ([]WarmAuto, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+warmAutoColumns+` FROM warm_auto
		WHERE refreshed_at IS NULL OR refreshed_at < $1 ORDER BY group_id`, dbTime(before))
	if err != nil {
		return nil, fmt.Errorf("list auto warm settings: %w", err)
	}
	defer rows.Close()
	var out []WarmAuto
	for rows.Next() {
		a, err := scanWarmAuto(rows)
		if err != nil {
			return nil, fmt.Errorf("list auto warm settings: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// RefreshWarmAuto makes the auto entries of a group the tags given, in
// one transaction: auto entries of other tags go, new tags are added due
// now (a tag with a manual entry keeps it), and the setting is marked
// refreshed at at.
func (s *Store) RefreshWarmAuto(ctx context.Context, a WarmAuto, tags []PulledTag, at time.Time) error {
	at = dbTime(at)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		keep := make(map[[2]string]bool, len(tags))
		for _, t := range tags {
			keep[[2]string{t.Image, t.Tag}] = true
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, image, tag FROM warm_entries WHERE group_id = $1 AND auto`, a.GroupID)
		if err != nil {
			return fmt.Errorf("refresh auto warm of group %d: %w", a.GroupID, err)
		}
		var drop []int64
		for rows.Next() {
			var (
				id         int64
				image, tag string
			)
			if err := rows.Scan(&id, &image, &tag); err != nil {
				rows.Close()
				return fmt.Errorf("refresh auto warm of group %d: %w", a.GroupID, err)
			}
			if !keep[[2]string{image, tag}] {
				drop = append(drop, id)
			}
		}
		rows.Close()
		for _, id := range drop {
			if _, err := tx.ExecContext(ctx, `DELETE FROM warm_entries WHERE id = $1`, id); err != nil {
				return fmt.Errorf("refresh auto warm of group %d: %w", a.GroupID, err)
			}
		}
		for _, t := range tags {
			if _, err := tx.ExecContext(ctx, `INSERT INTO warm_entries (group_id, image, tag, platforms, every_seconds, auto, created_at, next_at)
				VALUES ($1, $2, $3, $4, $5, TRUE, $6, $6)
				ON CONFLICT (group_id, image, tag) DO UPDATE SET platforms = excluded.platforms, every_seconds = excluded.every_seconds
					WHERE warm_entries.auto`,
				a.GroupID, t.Image, t.Tag, joinList(a.Platforms), int64(a.Every/time.Second), at); err != nil {
				return fmt.Errorf("refresh auto warm of group %d: add %s:%s: %w", a.GroupID, t.Image, t.Tag, err)
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE warm_auto SET refreshed_at = $1 WHERE group_id = $2`, at, a.GroupID)
		return affected(res, err, fmt.Sprintf("refresh auto warm of group %d", a.GroupID))
	})
}

// CountTagPulls adds pulls to the daily counters, in one transaction.
// Counts of groups deleted meanwhile are dropped.
func (s *Store) CountTagPulls(ctx context.Context, pulls []TagPull) error {
	if len(pulls) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, p := range pulls {
			day := dbTime(p.Day).Truncate(24 * time.Hour)
			_, err := tx.ExecContext(ctx, `INSERT INTO tag_pulls (group_id, image, tag, day, pulls)
				SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM groups WHERE id = $1)
				ON CONFLICT (group_id, image, tag, day) DO UPDATE SET pulls = tag_pulls.pulls + excluded.pulls`,
				p.GroupID, p.Image, p.Tag, day, p.Pulls)
			if err != nil {
				return fmt.Errorf("count pulls of %s:%s in group %d: %w", p.Image, p.Tag, p.GroupID, err)
			}
		}
		return nil
	})
}

// PruneTagPulls deletes the pull counts of the days before before and
// returns how many rows went.
func (s *Store) PruneTagPulls(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM tag_pulls WHERE day < $1`, dbTime(before).Truncate(24*time.Hour))
	if err != nil {
		return 0, fmt.Errorf("prune tag pull counts: %w", err)
	}
	return res.RowsAffected()
}

// TopPulledTags returns up to limit of a group's tags most pulled on the
// days from since on, most pulled first (ties by image and tag).
func (s *Store) TopPulledTags(ctx context.Context, groupID int64, since time.Time, limit int) ([]PulledTag, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT image, tag, SUM(pulls) AS n FROM tag_pulls
		WHERE group_id = $1 AND day >= $2 GROUP BY image, tag ORDER BY n DESC, image, tag LIMIT $3`,
		groupID, dbTime(since).Truncate(24*time.Hour), listLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list most pulled tags of group %d: %w", groupID, err)
	}
	defer rows.Close()
	var out []PulledTag
	for rows.Next() {
		var t PulledTag
		if err := rows.Scan(&t.Image, &t.Tag, &t.Pulls); err != nil {
			return nil, fmt.Errorf("list most pulled tags of group %d: %w", groupID, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
