//go:build !linux

package main

import (
	"context"
	"errors"

	"github.com/onecard-hub/onecard/reader/virtual"
)

// startDemoPCSC: the vpcd set-up is Linux only; the demo uses in-process
// readers elsewhere.
func startDemoPCSC(context.Context, virtual.Card, virtual.Card) (demoReaders, error) {
	return nil, errors.New("virtual cards behind PC/SC are set up on Linux only (vpcd)")
}
