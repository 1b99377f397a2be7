package apdu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// step is one expected command and the card's scripted answer.
type step struct {
	want  string // expected command, hex
	reply string // response, hex
	err   error  // transport error instead of a reply
}

// scriptCard is a fake Transmitter that checks each command against its
// script and answers from it.
type scriptCard struct {
	t     testing.TB
	steps []step
	n     int
}

func (s *scriptCard) Transmit(_ context.Context, cmd []byte) ([]byte, error) {
	if s.n >= len(s.steps) {
		return nil, fmt.Errorf("unexpected command %X after the script ended", cmd)
	}
	st := s.steps[s.n]
	s.n++
	if want := mustHex(s.t, st.want); !bytes.Equal(cmd, want) {
		return nil, fmt.Errorf("step %d: got command %X, want %X", s.n, cmd, want)
	}
	if st.err != nil {
		return nil, st.err
	}
	return mustHex(s.t, st.reply), nil
}

var errCardRemoved = errors.New("card removed")

func TestExchange(t *testing.T) {
	tests := []struct {
		name    string
		cmd     Command
		steps   []step
		data    string
		sw      uint16
		wantErr error
	}{
		{
			name:  "plain 9000",
			cmd:   Command{INS: 0xB2, P1: 0x03, Ne: 6},
			steps: []step{{want: "00B2030006", reply: "0304332E3030 9000"}},
			data:  "0304332E3030", sw: 0x9000,
		},
		{
			name: "61xx then GET RESPONSE (PSAM DES CRYPT trace)",
			cmd:  Command{CLA: 0x80, INS: 0xFA, Data: mustHex(t, "1122334455667788")},
			steps: []step{
				{want: "80FA0000081122334455667788", reply: "6108"},
				{want: "00C0000008", reply: "A1A2A3A4A5A6A7A8 9000"},
			},
			data: "A1A2A3A4A5A6A7A8", sw: 0x9000,
		},
		{
			name: "61xx chained twice with partial data",
			cmd:  Command{INS: 0xCA, P1: 0x9F, P2: 0x7F, Ne: 256},
			steps: []step{
				{want: "00CA9F7F00", reply: "AABB 6102"},
				{want: "00C0000002", reply: "CCDD 6101"},
				{want: "00C0000001", reply: "EE 9000"},
			},
			data: "AABBCCDDEE", sw: 0x9000,
		},
		{
			name: "6100 asks for 256 bytes",
			cmd:  Command{INS: 0xB0, Ne: 1},
			steps: []step{
				{want: "00B0000001", reply: "6100"},
				{want: "00C0000000", reply: "01 9000"},
			},
			data: "01", sw: 0x9000,
		},
		{
			name: "6Cxx resend with Le",
			cmd:  Command{INS: 0xB2, P1: 0x07, Ne: 16},
			steps: []step{
				{want: "00B2070010", reply: "6C0B"},
				{want: "00B207000B", reply: "0709 313233343536373839 9000"},
			},
			data: "0709313233343536373839", sw: 0x9000,
		},
		{
			name: "6Cxx on a case 1 command adds Le",
			cmd:  Command{INS: 0x84},
			steps: []step{
				{want: "00840000", reply: "6C08"},
				{want: "0084000008", reply: "0102030405060708 9000"},
			},
			data: "0102030405060708", sw: 0x9000,
		},
		{
			name: "6Cxx then 61xx",
			cmd:  Command{INS: 0xB2, P1: 0x01, Ne: 256},
			steps: []step{
				{want: "00B2010000", reply: "6C12"},
				{want: "00B2010012", reply: "6112"},
				{want: "00C0000012", reply: "0110639900D15600000500BF7C7A48FB4966 9000"},
			},
			data: "0110639900D15600000500BF7C7A48FB4966", sw: 0x9000,
		},
		{
			name: "6Cxx only resent once",
			cmd:  Command{INS: 0xB2, P1: 0x07, Ne: 16},
			steps: []step{
				{want: "00B2070010", reply: "6C0B"},
				{want: "00B207000B", reply: "6C0C"},
			},
			sw: 0x6C0C,
		},
		{
			name: "GET RESPONSE answered with 6Cxx",
			cmd:  Command{CLA: 0x80, INS: 0xFA, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
			steps: []step{
				{want: "80FA0000080102030405060708", reply: "6108"},
				{want: "00C0000008", reply: "6C04"},
				{want: "00C0000004", reply: "CAFEBABE 9000"},
			},
			data: "CAFEBABE", sw: 0x9000,
		},
		{
			name:  "error status returned, not judged",
			cmd:   Command{INS: 0x20, Data: []byte{0x12, 0x34, 0x56}},
			steps: []step{{want: "0020000003123456", reply: "63C2"}},
			sw:    0x63C2,
		},
		{
			name: "logical channel kept in GET RESPONSE",
			cmd:  Command{CLA: 0x03, INS: 0xB0, Ne: 2},
			steps: []step{
				{want: "03B0000002", reply: "6102"},
				{want: "03C0000002", reply: "ABCD 9000"},
			},
			data: "ABCD", sw: 0x9000,
		},
		{
			name: "SM and chaining bits dropped in GET RESPONSE",
			cmd:  Command{CLA: 0x1D, INS: 0xD6, Data: []byte{1}},
			steps: []step{
				{want: "1DD6000001 01", reply: "6101"},
				{want: "01C0000001", reply: "AA 9000"},
			},
			data: "AA", sw: 0x9000,
		},
		{
			name: "further interindustry channel kept",
			cmd:  Command{CLA: 0x65, INS: 0xB0, Ne: 1},
			steps: []step{
				{want: "65B0000001", reply: "6101"},
				{want: "45C0000001", reply: "AA 9000"},
			},
			data: "AA", sw: 0x9000,
		},
		{
			name: "proprietary SM class uses 00 for GET RESPONSE",
			cmd:  Command{CLA: 0x84, INS: 0x1E, Data: []byte{1, 2, 3, 4}},
			steps: []step{
				{want: "841E00000401020304", reply: "6101"},
				{want: "00C0000001", reply: "AA 9000"},
			},
			data: "AA", sw: 0x9000,
		},
		{
			name:    "transport error wrapped",
			cmd:     Command{INS: 0x84, Ne: 8},
			steps:   []step{{want: "0084000008", err: errCardRemoved}},
			wantErr: errCardRemoved,
		},
		{
			name: "transport error during GET RESPONSE",
			cmd:  Command{INS: 0x84, Ne: 8},
			steps: []step{
				{want: "0084000008", reply: "6108"},
				{want: "00C0000008", err: errCardRemoved},
			},
			wantErr: errCardRemoved,
		},
		{
			name:    "one-byte response",
			cmd:     Command{INS: 0x84, Ne: 8},
			steps:   []step{{want: "0084000008", reply: "90"}},
			wantErr: ErrMalformedResponse,
		},
		{
			name:    "unencodable command",
			cmd:     Command{INS: 0xB0, Ne: 70000},
			wantErr: ErrMalformedCommand,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			card := &scriptCard{t: t, steps: tt.steps}
			resp, err := Exchange(context.Background(), card, tt.cmd)
			if card.n != len(tt.steps) {
				t.Errorf("card saw %d commands, script has %d", card.n, len(tt.steps))
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Exchange error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if resp.SW != tt.sw || !bytes.Equal(resp.Data, mustHex(t, tt.data)) {
				t.Fatalf("Exchange = %X %04X, want %s %04X", resp.Data, resp.SW, tt.data, tt.sw)
			}
		})
	}
}

// endlessCard answers every command with reply.
type endlessCard struct {
	reply []byte
	n     int
}

func (c *endlessCard) Transmit(context.Context, []byte) ([]byte, error) {
	c.n++
	return c.reply, nil
}

func TestExchangeBounded(t *testing.T) {
	tests := []struct {
		name    string
		reply   []byte
		maxSent int
	}{
		{"61xx forever", []byte{0x61, 0x01}, 1 + MaxGetResponses},
		{"large data with 61xx forever", append(make([]byte, 4096), 0x61, 0x00), 1 + MaxResponseBytes/4096 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			card := &endlessCard{reply: tt.reply}
			_, err := Exchange(context.Background(), card, Command{INS: 0xB0, Ne: 1})
			if !errors.Is(err, ErrChainTooLong) {
				t.Fatalf("Exchange error = %v, want ErrChainTooLong", err)
			}
			if card.n > tt.maxSent {
				t.Fatalf("sent %d commands, limit %d", card.n, tt.maxSent)
			}
		})
	}
}

func TestExchangeContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	card := &endlessCard{reply: []byte{0x90, 0x00}}
	if _, err := Exchange(ctx, card, Command{INS: 0x84, Ne: 8}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Exchange error = %v, want context.Canceled", err)
	}
	if card.n != 0 {
		t.Fatalf("sent %d commands on a cancelled context", card.n)
	}
	if _, err := Exchange(context.Background(), nil, Command{}); err == nil {
		t.Fatal("Exchange with nil Transmitter succeeded")
	}
}

func TestRun(t *testing.T) {
	card := &scriptCard{t: t, steps: []step{
		{want: "805C000204", reply: "000003E8 9000"},
		{want: "0020000003123456", reply: "63C1"},
		{want: "00B2070010", reply: "6982"},
	}}
	ctx := context.Background()
	data, err := Run(ctx, card, Command{CLA: 0x80, INS: 0x5C, P2: 0x02, Ne: 4})
	if err != nil || !bytes.Equal(data, []byte{0, 0, 3, 0xE8}) {
		t.Fatalf("Run GET BALANCE = %X, %v", data, err)
	}
	data, err = Run(ctx, card, Command{INS: 0x20, Data: []byte{0x12, 0x34, 0x56}})
	var ve VerifyError
	if data != nil || !errors.As(err, &ve) || ve.TriesLeft != 1 {
		t.Fatalf("Run VERIFY = %X, %v; want VerifyError{1}", data, err)
	}
	if strings.Contains(err.Error(), "123456") {
		t.Fatal("error text contains the PIN")
	}
	_, err = Run(ctx, card, Command{INS: 0xB2, P1: 0x07, Ne: 16})
	var se *StatusError
	if !errors.Is(err, ErrSecurityStatus) || !errors.As(err, &se) || se.SW != SWSecurityStatus {
		t.Fatalf("Run READ RECORD error = %v, want 6982", err)
	}
}
