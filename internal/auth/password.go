package auth

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// PasswordCost is the bcrypt cost of new password hashes.
const PasswordCost = 11

// MaxPasswordLength is the longest password in bytes: bcrypt ignores
// anything after 72 bytes, so longer passwords are refused rather than
// silently truncated.
const MaxPasswordLength = 72

// HashPassword returns the bcrypt hash of pw. An empty password or one over
// MaxPasswordLength bytes is an error.
func HashPassword(pw string) (string, error) {
	return hashPassword(pw, PasswordCost)
}

func hashPassword(pw string, cost int) (string, error) {
	switch {
	case pw == "":
		return "", errors.New("hash password: the password is empty")
	case len(pw) > MaxPasswordLength:
		return "", fmt.Errorf("hash password: the password is %d bytes long; the limit is %d bytes", len(pw), MaxPasswordLength)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether pw matches the bcrypt hash. The comparison
// is constant-time; a malformed or empty hash matches nothing.
func CheckPassword(hash, pw string) bool {
	if hash == "" || pw == "" || len(pw) > MaxPasswordLength {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// dummyHash is a cost-11 hash of a random string nobody knows. Checking a
// password against it when the user does not exist makes a failed sign-in
// take as long for an unknown user as for a wrong password.
const dummyHash = "$2a$11$piWZ1bMBx.g4mRwadL3jt.dg2.Z.sBEElRzXK728z8DnrRHWVlXPW"
