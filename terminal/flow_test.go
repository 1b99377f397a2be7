package terminal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/hub/proof"
	"github.com/onecard-hub/onecard/internal/simcard"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/sm"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/journal"
	"github.com/onecard-hub/onecard/terminal/national"
	"github.com/onecard-hub/onecard/terminal/record"
)

var cardFiles = []string{"ssc-gen2.yaml", "ssc-gen3.yaml"}

func TestIdentityModes(t *testing.T) {
	for _, file := range cardFiles {
		spec := readSpec(t, file).SSC
		for _, tc := range []struct {
			name     string
			ro       rigOpts
			mode     terminal.ReadMode
			wantMode terminal.ReadMode
			reason   error // degraded reason
		}{
			{"psam", rigOpts{}, terminal.ModePSAM, terminal.ModePSAM, nil},
			{"auto-psam", rigOpts{keyService: true}, terminal.ModeAuto, terminal.ModePSAM, nil},
			{"key-service", rigOpts{noPSAM: true, keyService: true}, terminal.ModeKeyService, terminal.ModeKeyService, nil},
			{"auto-key-service", rigOpts{noPSAM: true, keyService: true}, terminal.ModeAuto, terminal.ModeKeyService, nil},
			{"public", rigOpts{}, terminal.ModePublic, terminal.ModePublic, nil},
			{"auto-degraded", rigOpts{noPSAM: true}, terminal.ModeAuto, terminal.ModePublic, terminal.ErrNoKeys},
		} {
			t.Run(file+"/"+tc.name, func(t *testing.T) {
				card := newCard(t, file, nil)
				r := newRig(t, card, tc.ro)
				id, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{Mode: tc.mode})
				if err != nil {
					t.Fatalf("ReadIdentity: %v", err)
				}
				if id.Mode != tc.wantMode {
					t.Errorf("mode %v, want %v", id.Mode, tc.wantMode)
				}
				if !bytes.Equal(id.CardID[:], card.CardID()) {
					t.Errorf("card ID %s", id.CardID)
				}
				if id.Generation != spec.Generation {
					t.Errorf("generation %d, want %d", id.Generation, spec.Generation)
				}
				if id.IssueDate != spec.IssueDate || id.ExpiryDate != spec.ExpiryDate {
					t.Errorf("dates %s %s", id.IssueDate, id.ExpiryDate)
				}
				authenticated := tc.wantMode != terminal.ModePublic
				if id.Genuine != authenticated {
					t.Errorf("genuine %v", id.Genuine)
				}
				if id.ReadAuthorised != (authenticated && spec.Generation == 3) {
					t.Errorf("read authorised %v", id.ReadAuthorised)
				}
				wantName, wantSSN, wantNo := spec.Holder.Name, spec.Holder.SSN, spec.CardNumber
				if !authenticated {
					wantName, wantSSN, wantNo = "", "", ""
				}
				if id.Name != wantName || id.PersonID != wantSSN || id.CardNumber != wantNo {
					t.Errorf("holder %q %q %q, want %q %q %q", id.Name, id.PersonID, id.CardNumber, wantName, wantSSN, wantNo)
				}
				if authenticated && (id.Sex != spec.Holder.Sex || id.BirthDate != spec.Holder.BirthDate || id.Birthplace != spec.Holder.Birthplace) {
					t.Errorf("details %q %q %q", id.Sex, id.BirthDate, id.Birthplace)
				}
				if (id.Reason != nil) != (tc.reason != nil) || (tc.reason != nil && !errors.Is(id.Reason, tc.reason)) {
					t.Errorf("reason %v, want %v", id.Reason, tc.reason)
				}
				// The national output: fields in order, degraded reads
				// leave the holder fields empty and return the reason's
				// code.
				out, code := national.ReadCardBas(id, nil)
				b, err := national.ParseBasic(out)
				if err != nil {
					t.Fatalf("ParseBasic(%q): %v", out, err)
				}
				if b.CardID != id.CardID.String() || b.Region != id.CardID.String()[:6] || b.Name != wantName ||
					b.PersonID != wantSSN || b.CardNumber != wantNo || b.SpecVersion != id.SpecVersion || b.DeviceID != "KIOSK-01" {
					t.Errorf("national output %q", out)
				}
				// simcard derives the historical bytes: 00 90 4F 43 <gen>
				// 86 60 YYMMDD(issue) <last 3 bytes of the card ID>.
				wantHist := fmt.Sprintf("00904F43%02X8660%s%s", spec.Generation, spec.IssueDate[2:], strings.ToUpper(spec.CardID[26:]))
				if b.Historical != wantHist {
					t.Errorf("historical %q, want %q (ATR % X)", b.Historical, wantHist, id.ATR)
				}
				wantCode := 0
				if tc.reason != nil {
					wantCode = national.CodeNoPSAM
				}
				if code != wantCode {
					t.Errorf("national code %d, want %d", code, wantCode)
				}
				if !tc.ro.noPSAM && authenticated && b.TerminalID != r.psam.TerminalNumber() {
					t.Errorf("terminal field %q", b.TerminalID)
				}
			})
		}
	}
}

func TestIdentityExplicitModeFails(t *testing.T) {
	card := newCard(t, "ssc-gen3.yaml", nil)
	r := newRig(t, card, rigOpts{noPSAM: true})
	if _, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{Mode: terminal.ModePSAM}); !errors.Is(err, terminal.ErrNoPSAM) {
		t.Errorf("PSAM mode without PSAM: %v", err)
	}
	if _, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{Mode: terminal.ModeKeyService}); !errors.Is(err, terminal.ErrNoKeys) {
		t.Errorf("key-service mode without key service: %v", err)
	}
}

// A card personalised with another issuer's keys fails internal
// authentication in every authenticated mode and is never read.
func TestIdentityNotGenuine(t *testing.T) {
	other, err := sm.TestKeySet("counterfeit")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range cardFiles {
		for _, tc := range []struct {
			name string
			ro   rigOpts
			mode terminal.ReadMode
			want error
			code int
		}{
			{"psam", rigOpts{}, terminal.ModePSAM, terminal.ErrNotGenuine, national.CodeNotGenuine},
			{"key-service", rigOpts{noPSAM: true, keyService: true}, terminal.ModeKeyService, terminal.ErrKeyServiceMismatch, national.CodeHSMMismatch},
			{"auto", rigOpts{keyService: true}, terminal.ModeAuto, terminal.ErrNotGenuine, national.CodeNotGenuine},
		} {
			t.Run(file+"/"+tc.name, func(t *testing.T) {
				spec := *readSpec(t, file).SSC
				card, err := simcard.NewSSC(spec, simcard.Options{Keys: other})
				if err != nil {
					t.Fatal(err)
				}
				r := newRig(t, card, tc.ro)
				id, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{Mode: tc.mode})
				if !errors.Is(err, tc.want) || id != nil {
					t.Fatalf("got %v, %v; want %v", id, err, tc.want)
				}
				if _, code := national.ReadCardBas(id, err); code != tc.code {
					t.Errorf("national code %d, want %d", code, tc.code)
				}
			})
		}
	}
}

// The two-step read driven by hand through the national strings, as an
// HIS with its own HSM client would.
func TestTwoStepNationalStrings(t *testing.T) {
	for _, file := range cardFiles {
		t.Run(file, func(t *testing.T) {
			card := newCard(t, file, nil)
			r := newRig(t, card, rigOpts{noPSAM: true})
			ctx := ctxT(t)
			st, err := r.sess.Step1(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s1 := national.FormatStep1(st)
			back, err := national.ParseStep1(s1)
			if err != nil {
				t.Fatalf("ParseStep1(%q): %v", s1, err)
			}
			if national.FormatStep1(back) != s1 {
				t.Errorf("Step1 round trip %q", s1)
			}
			hsm := &terminal.LocalKeyService{Keys: keys(t)}
			key, err := hsm.AuthenticateRead(ctx, back)
			if err != nil {
				t.Fatal(err)
			}
			s2 := national.FormatStep2Key(key)
			if card.Generation() == 2 && !strings.HasSuffix(s2, "||") {
				t.Errorf("generation 2 key %q: want an empty RESULT2", s2)
			}
			key2, err := national.ParseStep2Key(s2)
			if err != nil {
				t.Fatal(err)
			}
			id, err := r.sess.Step2(ctx, key2)
			if err != nil {
				t.Fatal(err)
			}
			if id.Mode != terminal.ModeKeyService || id.PersonID != readSpec(t, file).SSC.Holder.SSN {
				t.Errorf("identity %v", id)
			}
			// Step2 again without Step1, and with a tampered RESULT1.
			if _, err := r.sess.Step2(ctx, key2); !errors.Is(err, terminal.ErrNoStep1) {
				t.Errorf("Step2 without Step1: %v", err)
			}
			if _, err := r.sess.Step1(ctx); err != nil {
				t.Fatal(err)
			}
			bad := terminal.Step2Key{Result1: bytes.Clone(key2.Result1), Result2: key2.Result2}
			bad.Result1[0] ^= 1
			if _, err := r.sess.Step2(ctx, bad); !errors.Is(err, terminal.ErrKeyServiceMismatch) || national.Code(err) != -25 {
				t.Errorf("tampered RESULT1: %v (code %d)", err, national.Code(err))
			}
			// A different card between the steps.
			if _, err := r.sess.Step1(ctx); err != nil {
				t.Fatal(err)
			}
			other := newCard(t, file, func(s *simcard.SSCSpec) { s.CardID = s.CardID[:16] + "0123456789ABCDEF" })
			r.cardSlot.Insert(other)
			if _, err := r.sess.Step2(ctx, key2); err == nil {
				t.Errorf("Step2 on another card succeeded")
			}
		})
	}
}

func TestIdentityMasked(t *testing.T) {
	card := newCard(t, "ssc-gen3.yaml", nil)
	spec := readSpec(t, "ssc-gen3.yaml").SSC
	r := newRig(t, card, rigOpts{})
	id, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("read", "identity", id)
	outputs := map[string]string{
		"String": id.String(), "%v": fmt.Sprintf("%v", id), "%+v": fmt.Sprintf("%+v", id),
		"%#v": fmt.Sprintf("%#v", id), "%s": fmt.Sprintf("%s", id), "slog": logBuf.String(),
	}
	for name, out := range outputs {
		for _, secret := range []string{spec.Holder.SSN, spec.Holder.Name, spec.CardNumber, spec.Holder.BirthDate, spec.Holder.Name[:3]} {
			if strings.Contains(out, secret) && secret != spec.Holder.Name[:3] {
				t.Errorf("%s output contains %q: %s", name, secret, out)
			}
		}
		if !strings.Contains(out, id.CardID.String()) {
			t.Errorf("%s output lacks the card ID: %s", name, out)
		}
	}
	js, err := id.MarshalJSON()
	if err != nil || !strings.Contains(string(js), spec.Holder.SSN) {
		t.Errorf("JSON %s, %v: want the unmasked person ID", js, err)
	}
}

func TestPIN(t *testing.T) {
	for _, file := range cardFiles {
		t.Run(file, func(t *testing.T) {
			card := newCard(t, file, nil)
			r := newRig(t, card, rigOpts{})
			ctx := ctxT(t)
			r.pins("123456", "111111", "222222")
			if err := r.sess.VerifyPIN(ctx); err != nil {
				t.Fatalf("right PIN: %v", err)
			}
			for _, want := range []int{2, 1} {
				err := r.sess.VerifyPIN(ctx)
				var pe *terminal.PINError
				var ve apdu.VerifyError
				if !errors.As(err, &pe) || pe.TriesLeft != want || pe.Blocked || !errors.As(err, &ve) || ve.TriesLeft != want {
					t.Fatalf("wrong PIN: %v, want %d tries left", err, want)
				}
				res := national.ResultOf(err)
				if res.Code != national.CodePINWrong || res.TriesLeft != want {
					t.Errorf("national %+v", res)
				}
			}
			// Right PIN resets the counter; change it; the old one fails.
			r.pins("123456", "123456", "654321", "654321", "123456")
			if err := r.sess.VerifyPIN(ctx); err != nil {
				t.Fatal(err)
			}
			if card.PINTriesLeft() != 3 {
				t.Errorf("tries after a right PIN: %d", card.PINTriesLeft())
			}
			if err := r.sess.ChangePIN(ctx); err != nil {
				t.Fatalf("change PIN: %v", err)
			}
			if err := r.sess.VerifyPIN(ctx); err != nil {
				t.Fatalf("new PIN: %v", err)
			}
			var pe *terminal.PINError
			if err := r.sess.VerifyPIN(ctx); !errors.As(err, &pe) {
				t.Fatalf("old PIN after change: %v", err)
			}
			// Block it.
			r.pins("000000", "000000", "654321")
			_ = r.sess.VerifyPIN(ctx)
			err := r.sess.VerifyPIN(ctx)
			if !errors.As(err, &pe) || !pe.Blocked || national.Code(err) != national.CodePINLocked {
				t.Fatalf("third wrong PIN: %v (code %d)", err, national.Code(err))
			}
			err = r.sess.VerifyPIN(ctx)
			if !errors.As(err, &pe) || !pe.Blocked || !errors.Is(err, apdu.ErrAuthBlocked) {
				t.Fatalf("right PIN on a blocked card: %v", err)
			}
			// PIN pad errors.
			r.pins()
			if err := r.sess.VerifyPIN(ctx); !errors.Is(err, terminal.ErrPINCancelled) || national.Code(err) != national.CodePINCancelled {
				t.Errorf("empty pad: %v", err)
			}
			r.pins("12")
			if err := r.sess.VerifyPIN(ctx); !errors.Is(err, terminal.ErrPINFormat) {
				t.Errorf("short PIN: %v", err)
			}
		})
	}
}

func TestPINRedacted(t *testing.T) {
	p, err := terminal.NewPIN([]byte("987654"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "pin", p)
	for _, out := range []string{fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s %q %x", p, p, p, p, p, p), buf.String()} {
		if strings.Contains(out, "987654") || strings.Contains(out, "393837") {
			t.Errorf("PIN leaked: %s", out)
		}
	}
	for _, bad := range []string{"", "123", "1234567890123", "12a456", "12 456"} {
		if _, err := terminal.NewPIN([]byte(bad)); !errors.Is(err, terminal.ErrPINFormat) {
			t.Errorf("NewPIN(%q): %v", bad, err)
		}
	}
}

// payOnce runs a payment with the right PIN.
func payOnce(t testing.TB, r *rig, amount uint32) (*terminal.Receipt, error) {
	r.pins("123456")
	return r.sess.Pay(ctxT(t), terminal.PayRequest{Amount: amount, Merchant: "HOSP-0571-001", Fund: "310"})
}

func TestPay(t *testing.T) {
	for _, file := range cardFiles {
		t.Run(file, func(t *testing.T) {
			card := newCard(t, file, nil)
			r := newRig(t, card, rigOpts{})
			b0, seq0 := card.Balance(), card.EP().OfflineSeq
			psamSeq := r.psam.NextSeq()
			rc, err := payOnce(t, r, 1234)
			if err != nil {
				t.Fatalf("pay: %v", err)
			}
			if card.Balance() != b0-1234 || card.EP().OfflineSeq != seq0+1 {
				t.Errorf("balance %d counter %d", card.Balance(), card.EP().OfflineSeq)
			}
			rec := rc.Record()
			if rc.State != journal.CardDone || rec.Kind != record.KindPay || rec.Amount != 1234 ||
				rec.BalanceBefore != b0 || rec.BalanceAfter != b0-1234 || rec.CardCounter != seq0 ||
				rec.PSAMSeq != psamSeq || rec.TerminalID != r.psam.TerminalNumber() || rec.Merchant != "HOSP-0571-001" ||
				rec.Fund != "310" || rec.TxType != record.TxPurchaseEP || rec.Suite != card.Suite().Name() {
				t.Errorf("record %+v", rec.Masked())
			}
			checkTAC(t, card, rec)
			if err := rc.Envelope.Verify(keys(t).TerminalPublicKey()); err != nil {
				t.Errorf("terminal signature: %v", err)
			}
			e, err := r.j.Get(rc.Seq)
			if err != nil || e.State != journal.CardDone || !bytes.Equal(e.Record.TAC, rec.TAC) {
				t.Errorf("journal %v %v", e.State, err)
			}
			if !strings.Contains(rc.String(), "card-done") {
				t.Errorf("receipt %s", rc)
			}
			// The card's own log has it.
			if l := card.Log(); len(l) == 0 || l[0].Amount != 1234 || l[0].Seq != seq0 {
				t.Errorf("card log %+v", l)
			}
		})
	}
}

func TestPayRefusals(t *testing.T) {
	for _, file := range cardFiles {
		t.Run(file+"/insufficient", func(t *testing.T) {
			card := newCard(t, file, nil)
			r := newRig(t, card, rigOpts{})
			b0 := card.Balance()
			_, err := payOnce(t, r, b0+1)
			if !errors.Is(err, apdu.ErrInsufficientBalance) || national.Code(err) != apdu.NationalCode(apdu.SWInsufficientBalance) {
				t.Fatalf("pay above balance: %v (code %d)", err, national.Code(err))
			}
			if card.Balance() != b0 {
				t.Errorf("balance moved: %d", card.Balance())
			}
			es := entries(t, r.j)
			if len(es) != 1 || es[0].State != journal.Failed || !strings.Contains(es[0].Reason, "9401") {
				t.Errorf("journal %+v", es)
			}
		})
		t.Run(file+"/lost", func(t *testing.T) {
			card := newCard(t, file, nil)
			r := newRig(t, card, rigOpts{})
			var id record.CardID
			copy(id[:], card.CardID())
			r.lost.Add(id)
			var moneyAPDUs int
			r.cardSlot.hook = func(stage string, cmd []byte) {
				if stage == "before" && len(cmd) > 1 && cmd[0] == 0x80 && (cmd[1] == 0x50 || cmd[1] == 0x54 || cmd[1] == 0x52) {
					moneyAPDUs++
				}
				if stage == "before" && len(cmd) > 1 && cmd[1] == 0x20 {
					moneyAPDUs++ // not even the PIN
				}
			}
			b0 := card.Balance()
			_, err := payOnce(t, r, 100)
			if !errors.Is(err, terminal.ErrLostCard) || national.Code(err) != national.CodeLostCard {
				t.Fatalf("lost card: %v", err)
			}
			if moneyAPDUs != 0 || card.Balance() != b0 || len(entries(t, r.j)) != 0 {
				t.Errorf("lost card touched: %d APDUs, balance %d, %d records", moneyAPDUs, card.Balance(), len(entries(t, r.j)))
			}
			r.lost.Remove(id)
			if _, err := payOnce(t, r, 100); err != nil {
				t.Errorf("after removal from the list: %v", err)
			}
		})
		t.Run(file+"/wrong-pin", func(t *testing.T) {
			card := newCard(t, file, nil)
			r := newRig(t, card, rigOpts{})
			r.pins("000000")
			_, err := r.sess.Pay(ctxT(t), terminal.PayRequest{Amount: 100})
			var pe *terminal.PINError
			if !errors.As(err, &pe) || pe.TriesLeft != 2 {
				t.Fatalf("wrong PIN: %v", err)
			}
			if len(entries(t, r.j)) != 0 {
				t.Errorf("journal has records")
			}
		})
	}
	t.Run("bad-requests", func(t *testing.T) {
		card := newCard(t, "ssc-gen3.yaml", nil)
		r := newRig(t, card, rigOpts{})
		for _, req := range []terminal.PayRequest{{Amount: 0}, {Amount: 1, Merchant: strings.Repeat("m", record.MaxMerchant+1)}, {Amount: 1, Fund: strings.Repeat("f", record.MaxFund+1)}} {
			if _, err := r.sess.Pay(ctxT(t), req); !errors.Is(err, terminal.ErrBadRequest) {
				t.Errorf("Pay(%+v): %v", req, err)
			}
		}
		r2 := newRig(t, card, rigOpts{noPSAM: true})
		if _, err := r2.sess.Pay(ctxT(t), terminal.PayRequest{Amount: 1}); !errors.Is(err, terminal.ErrNoPSAM) || national.Code(err) != national.CodeNoPSAM {
			t.Errorf("pay without PSAM: %v", err)
		}
	})
}

func TestLoad(t *testing.T) {
	for _, file := range cardFiles {
		t.Run(file, func(t *testing.T) {
			card := newCard(t, file, nil)
			r := newRig(t, card, rigOpts{})
			b0, seq0 := card.Balance(), card.EP().OnlineSeq
			rc, err := r.sess.Load(ctxT(t), terminal.LoadRequest{Amount: 5000, Programme: "SUBSIDY-2024", Fund: "agri"})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			rec := rc.Record()
			if card.Balance() != b0+5000 || card.EP().OnlineSeq != seq0+1 || rec.BalanceAfter != b0+5000 ||
				rec.CardCounter != seq0 || rec.Merchant != "SUBSIDY-2024" || rc.State != journal.CardDone || rec.TxType != record.TxLoadEP {
				t.Errorf("balance %d record %+v", card.Balance(), rec.Masked())
			}
			checkTAC(t, card, rec)
			if err := rc.Envelope.Verify(keys(t).TerminalPublicKey()); err != nil {
				t.Errorf("terminal signature: %v", err)
			}
		})
	}
	t.Run("not-entitled", func(t *testing.T) {
		card := newCard(t, "ssc-gen3.yaml", nil)
		refuse := func(context.Context, terminal.LoadAuthorisation) error {
			return errors.New("programme budget exhausted")
		}
		r := newRig(t, card, rigOpts{entitled: refuse})
		b0 := card.Balance()
		_, err := r.sess.Load(ctxT(t), terminal.LoadRequest{Amount: 100, Programme: "P"})
		if !errors.Is(err, terminal.ErrNotAuthorised) || national.Code(err) != national.CodeNotAuthorised {
			t.Fatalf("load: %v", err)
		}
		es := entries(t, r.j)
		if card.Balance() != b0 || len(es) != 1 || es[0].State != journal.Failed {
			t.Errorf("balance %d journal %+v", card.Balance(), es)
		}
	})
	t.Run("counterfeit-mac1", func(t *testing.T) {
		other, _ := sm.TestKeySet("counterfeit")
		card, err := simcard.NewSSC(*readSpec(t, "ssc-gen2.yaml").SSC, simcard.Options{Keys: other})
		if err != nil {
			t.Fatal(err)
		}
		r := newRig(t, card, rigOpts{})
		b0 := card.Balance()
		if _, err := r.sess.Load(ctxT(t), terminal.LoadRequest{Amount: 100}); !errors.Is(err, terminal.ErrNotAuthorised) {
			t.Fatalf("load on a counterfeit card: %v", err)
		}
		if card.Balance() != b0 {
			t.Errorf("balance moved")
		}
	})
	t.Run("over-cap", func(t *testing.T) {
		card := newCard(t, "ssc-gen2.yaml", func(s *simcard.SSCSpec) { s.Purse.MaxBalance = s.Purse.Balance + 10 })
		r := newRig(t, card, rigOpts{})
		if _, err := r.sess.Load(ctxT(t), terminal.LoadRequest{Amount: 11}); !errors.Is(err, apdu.ErrConditions) {
			t.Fatalf("load over the cap: %v", err)
		}
		if es := entries(t, r.j); len(es) != 1 || es[0].State != journal.Failed {
			t.Errorf("journal %+v", es)
		}
	})
}

func TestCertify(t *testing.T) {
	for _, file := range cardFiles {
		for _, ro := range []rigOpts{{}, {noPSAM: true, keyService: true}} {
			t.Run(fmt.Sprintf("%s/psam=%v", file, !ro.noPSAM), func(t *testing.T) {
				card := newCard(t, file, nil)
				spec := readSpec(t, file).SSC
				r := newRig(t, card, ro)
				r.pins("123456")
				rc, err := r.sess.Certify(ctxT(t), terminal.CertifyRequest{Programme: "PENSION-2024"})
				if err != nil {
					t.Fatalf("certify: %v", err)
				}
				rec := rc.Record()
				a := rec.Attestation
				if rec.Kind != record.KindCertify || !a.InternalAuthOK || !a.PINVerified || rec.PersonID != spec.Holder.SSN || rc.State != journal.CardDone {
					t.Errorf("record %+v", rec.Masked())
				}
				if card.Generation() == 3 {
					if len(a.Challenge) != terminal.CertifyChallengeLen || len(a.CardSignature) != 64 {
						t.Fatalf("attestation %+v", a)
					}
					if err := (proof.Verifier{Keys: keys(t)}).VerifyCardSignature(rec.CardID[:], a.Challenge, a.CardSignature); err != nil {
						t.Errorf("card signature: %v", err)
					}
				} else if len(a.Challenge) != 0 || len(a.CardSignature) != 0 {
					t.Errorf("generation 2 attestation %+v", a)
				}
				if err := rc.Envelope.Verify(keys(t).TerminalPublicKey()); err != nil {
					t.Errorf("terminal signature: %v", err)
				}
			})
		}
	}
	t.Run("degraded-refused", func(t *testing.T) {
		card := newCard(t, "ssc-gen3.yaml", nil)
		r := newRig(t, card, rigOpts{noPSAM: true})
		r.pins("123456")
		if _, err := r.sess.Certify(ctxT(t), terminal.CertifyRequest{}); !errors.Is(err, terminal.ErrNoKeys) {
			t.Errorf("certify without keys: %v", err)
		}
	})
	t.Run("wrong-verifier", func(t *testing.T) {
		other, _ := sm.TestKeySet("other-issuer")
		card := newCard(t, "ssc-gen3.yaml", nil)
		r := newRig(t, card, rigOpts{})
		r.opts.CardVerifier = proof.Verifier{Keys: other}
		r.rebuild()
		r.pins("123456")
		_, err := r.sess.Certify(ctxT(t), terminal.CertifyRequest{})
		if !errors.Is(err, terminal.ErrNotGenuine) {
			t.Fatalf("certify with another issuer's verifier: %v", err)
		}
		if es := entries(t, r.j); len(es) != 1 || es[0].State != journal.Failed {
			t.Errorf("journal %+v", es)
		}
	})
}

func TestNoCard(t *testing.T) {
	card := newCard(t, "ssc-gen2.yaml", nil)
	r := newRig(t, card, rigOpts{})
	r.cardSlot.Remove()
	_, err := r.sess.ReadIdentity(ctxT(t), terminal.ReadOptions{})
	if !errors.Is(err, reader.ErrNoCard) || national.Code(err) != national.CodeNoCard {
		t.Errorf("no card: %v (code %d)", err, national.Code(err))
	}
	r.psamSlot.Remove()
	r.reinsert()
	if _, err := payOnce(t, r, 1); !errors.Is(err, terminal.ErrNoPSAM) {
		t.Errorf("pay with an empty PSAM slot: %v", err)
	}
}
