package soak

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"success", nil, ClassOK},
		{"journal bound", fmt.Errorf("pay: %w: %w", terminal.ErrJournal, journal.ErrFull), ClassFull},
		{"file size limit, as bbolt words it", fmt.Errorf("pay: %w: %w", terminal.ErrJournal,
			errors.New("file resize error: truncate /k/journal.db: file too large")), ClassFull},
		{"disk full, wrapped errno", fmt.Errorf("pay: %w: %w", terminal.ErrJournal, syscall.ENOSPC), ClassFull},
		{"file too large outside the journal", errors.New("upload: file too large"), ClassError},
		{"insufficient balance", fmt.Errorf("pay: card INITIALIZE FOR PURCHASE: %w", &apdu.StatusError{SW: apdu.SWInsufficientBalance}), ClassDeclined},
		{"card pulled", fmt.Errorf("pay: %w", reader.ErrCardRemoved), ClassReader},
		{"something else", errors.New("boom"), ClassError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Errorf("classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
