package terminal

import (
	"fmt"
)

// HistoricalBytes returns the historical bytes of an ISO 7816-3 ATR (the
// national interface's 卡复位信息). It walks TS, T0 and the interface bytes
// TAi..TDi, and ignores a trailing TCK. Errors wrap ErrBadCardData for an
// ATR that is too short for what its T0/TDi bytes announce.
func HistoricalBytes(atr []byte) ([]byte, error) {
	if len(atr) < 2 {
		return nil, fmt.Errorf("parse ATR: %w: %d bytes", ErrBadCardData, len(atr))
	}
	if atr[0] != 0x3B && atr[0] != 0x3F {
		return nil, fmt.Errorf("parse ATR: %w: TS %02X", ErrBadCardData, atr[0])
	}
	k := int(atr[1] & 0x0F)
	y := atr[1] >> 4
	i := 2
	for {
		for bit := byte(1); bit <= 8; bit <<= 1 {
			if y&bit != 0 {
				i++
			}
		}
		if y&0x08 == 0 {
			break
		}
		// TDi is the last interface byte counted above.
		if i > len(atr) {
			return nil, fmt.Errorf("parse ATR: %w: interface bytes cut short", ErrBadCardData)
		}
		y = atr[i-1] >> 4
	}
	if i+k > len(atr) {
		return nil, fmt.Errorf("parse ATR: %w: %d historical bytes announced, %d present", ErrBadCardData, k, max(len(atr)-i, 0))
	}
	return append([]byte(nil), atr[i:i+k]...), nil
}
