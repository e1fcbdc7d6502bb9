package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, pw string
		wantErr  string // "" means success
	}{
		{"ordinary", "correct horse battery staple", ""},
		{"exactly 72 bytes", strings.Repeat("p", 72), ""},
		{"73 bytes", strings.Repeat("p", 73), "limit is 72 bytes"},
		{"72 bytes of multi-byte runes plus one", strings.Repeat("é", 36) + "x", "limit is 72 bytes"},
		{"empty", "", "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h, err := HashPassword(c.pw)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("HashPassword: err %v, want one saying %q", err, c.wantErr)
				}
				if c.pw != "" && strings.Contains(err.Error(), c.pw) {
					t.Errorf("the error echoes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("HashPassword: %v", err)
			}
			if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != PasswordCost {
				t.Errorf("cost %d (%v), want %d", cost, err, PasswordCost)
			}
			if !CheckPassword(h, c.pw) {
				t.Errorf("CheckPassword rejects the password it was hashed from")
			}
			if CheckPassword(h, c.pw+"x") || CheckPassword(h, c.pw[:len(c.pw)-1]) {
				t.Errorf("CheckPassword accepts a different password")
			}
		})
	}
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 72)
	hLong, err := hashPassword(long, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hashPassword("secret", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, hash, pw string
		want           bool
	}{
		{"right password", h, "secret", true},
		{"wrong password", h, "Secret", false},
		{"empty password", h, "", false},
		{"empty hash (password sign-in disabled)", "", "secret", false},
		{"malformed hash", "$2a$11$short", "secret", false},
		{"72-byte password", hLong, long, true},
		// bcrypt would ignore byte 73; we must not.
		{"73 bytes sharing the first 72", hLong, long + "b", false},
		{"dummy hash matches nothing guessable", dummyHash, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := CheckPassword(c.hash, c.pw); got != c.want {
				t.Errorf("CheckPassword = %v, want %v", got, c.want)
			}
		})
	}
}

func TestDummyHashIsWellFormed(t *testing.T) {
	t.Parallel()
	// A malformed dummy hash would fail fast and reveal unknown usernames
	// by timing.
	if cost, err := bcrypt.Cost([]byte(dummyHash)); err != nil || cost != PasswordCost {
		t.Errorf("dummy hash cost %d (%v), want %d", cost, err, PasswordCost)
	}
}
