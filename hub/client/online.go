package client

import (
	"context"
	"errors"
	"fmt"

	hubsync "github.com/onecard-hub/onecard/hub/sync"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/record"
)

// The client is the terminal's remote authoriser and key service.
var (
	_ terminal.Authoriser = (*Client)(nil)
	_ terminal.KeyService = (*Client)(nil)
	_ terminal.LostCards  = (*LostList)(nil)
)

// AuthoriseLoad asks the hub to authorise a load (terminal.Authoriser):
// the hub checks the card's MAC1 and the programme's entitlement for the
// card and returns MAC2. Refusals wrap terminal.ErrNotAuthorised (and the
// hub's *hubsync.Error); no connection wraps ErrOffline and
// terminal.ErrNotAuthorised (the load cannot go ahead); a request for
// another terminal number wraps terminal.ErrBadRequest.
func (c *Client) AuthoriseLoad(ctx context.Context, a terminal.LoadAuthorisation) ([]byte, error) {
	if a.TerminalID != c.o.TerminalID {
		return nil, fmt.Errorf("authorise load: %w: terminal %s is not this client's", terminal.ErrBadRequest, a.TerminalID)
	}
	m := &hubsync.LoadAuth{
		TerminalSeq: a.TerminalSeq, CardID: a.CardID.String(), AlgFlag: a.AlgFlag,
		Programme: a.Programme, Fund: a.Fund, Amount: a.Amount, TxType: uint8(a.TxType),
		Balance: a.Balance, OnlineSeq: a.OnlineSeq, Random: a.Random[:], MAC1: a.MAC1,
		CardDate: a.CardDate, CardTime: a.CardTime,
	}
	if err := m.Validate(hubsync.Limits{}); err != nil {
		return nil, fmt.Errorf("authorise load: %w: %w", terminal.ErrBadRequest, err)
	}
	ans, err := c.ask(ctx, m)
	if err != nil {
		var he *hubsync.Error
		if errors.As(err, &he) && he.Code == hubsync.CodeBadRequest {
			return nil, fmt.Errorf("authorise load: %w: %w", terminal.ErrBadRequest, err)
		}
		return nil, fmt.Errorf("authorise load: %w: %w", terminal.ErrNotAuthorised, err)
	}
	r, ok := ans.(*hubsync.LoadAuthResult)
	if !ok {
		return nil, fmt.Errorf("authorise load: %w: %w: answer %s", terminal.ErrNotAuthorised, ErrProtocol, ans.Type())
	}
	return r.MAC2, nil
}

// AuthenticateRead asks the hub's key service for RESULT1/RESULT2 of a
// two-step identity read (terminal.KeyService). Errors wrap
// terminal.ErrKeyService (with ErrOffline or the hub's *hubsync.Error), or
// terminal.ErrBadRequest for a Step1 that cannot be sent.
func (c *Client) AuthenticateRead(ctx context.Context, s terminal.Step1) (terminal.Step2Key, error) {
	m := &hubsync.KeyRead{Region: s.Region, Historical: s.Historical, AlgFlag: s.AlgFlag, CardID: s.CardID.String()}
	for i := range s.Randoms {
		m.Randoms = append(m.Randoms, append([]byte(nil), s.Randoms[i][:]...))
	}
	if err := m.Validate(hubsync.Limits{}); err != nil {
		return terminal.Step2Key{}, fmt.Errorf("authenticate read: %w: %w", terminal.ErrBadRequest, err)
	}
	ans, err := c.ask(ctx, m)
	if err != nil {
		return terminal.Step2Key{}, fmt.Errorf("authenticate read: %w: %w", terminal.ErrKeyService, err)
	}
	r, ok := ans.(*hubsync.KeyReadResult)
	if !ok {
		return terminal.Step2Key{}, fmt.Errorf("authenticate read: %w: %w: answer %s", terminal.ErrKeyService, ErrProtocol, ans.Type())
	}
	return terminal.Step2Key{Result1: r.Result1, Result2: r.Result2}, nil
}

// PendingCredits asks the hub which credits wait for card (informational:
// the terminal shows them; loading them goes through AuthoriseLoad).
// Errors: ErrOffline, the hub's *hubsync.Error, ErrProtocol.
func (c *Client) PendingCredits(ctx context.Context, card record.CardID) ([]hubsync.Credit, error) {
	ans, err := c.ask(ctx, &hubsync.CreditsQuery{CardID: card.String()})
	if err != nil {
		return nil, fmt.Errorf("pending credits: %w", err)
	}
	r, ok := ans.(*hubsync.Credits)
	if !ok || r.CardID != card.String() {
		return nil, fmt.Errorf("pending credits: %w: unexpected answer", ErrProtocol)
	}
	return r.Credits, nil
}

// ask sends a request on the live connection and waits for the answer.
func (c *Client) ask(ctx context.Context, m hubsync.Message) (hubsync.Message, error) {
	cn, err := c.online(ctx)
	if err != nil {
		return nil, err
	}
	return cn.request(ctx, m, c.o.RequestTimeout)
}
