package national_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/reader"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/national"
	"github.com/onecard-hub/onecard/terminal/record"
)

// Real strings quoted in ssc-card-facts §2.2.
const (
	sampleStep1 = "331100|00904A3001866033110000048A|03|331100D156000005500509728DB46EF9|456FE02E253F817D|A39FC0BF44CAEA80|4F5FB5932F10694D|2CFE760428888D8E|"
	sampleBasic = "411600|||411600D156000005C38275EEFC9B9648||008C544CB386844116018593CA|3.00|20211203|20311202|"
)

func TestStep1Sample(t *testing.T) {
	st, err := national.ParseStep1(sampleStep1)
	if err != nil {
		t.Fatal(err)
	}
	if st.Region != "331100" || st.AlgFlag != 0x03 || st.CardID.String() != "331100D156000005500509728DB46EF9" ||
		fmt.Sprintf("%X", st.Historical) != "00904A3001866033110000048A" || fmt.Sprintf("%X", st.Randoms[3]) != "2CFE760428888D8E" {
		t.Errorf("parsed %+v", st)
	}
	if got := national.FormatStep1(st); got != sampleStep1 {
		t.Errorf("format %q", got)
	}
	st.TerminalID = "330100000001"
	if got := national.FormatStep1(st); got != sampleStep1+"330100000001|" {
		t.Errorf("with terminal: %q", got)
	}
	back, err := national.ParseStep1(national.FormatStep1(st))
	if err != nil || !reflect.DeepEqual(back, st) {
		t.Errorf("9-field round trip %+v %v", back, err)
	}
}

func TestParseStep1Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"no terminator", strings.TrimSuffix(sampleStep1, "|"), national.ErrFormat},
		{"too few", "331100|00|03|", national.ErrFormat},
		{"bad random char", strings.Replace(sampleStep1, "456FE02E253F817D", "456FE02E253F817G", 1), national.ErrCryptoChar},
		{"short random", strings.Replace(sampleStep1, "456FE02E253F817D", "456FE02E253F81", 1), national.ErrCryptoLength},
		{"region mismatch", strings.Replace(sampleStep1, "331100|", "331101|", 1), national.ErrFormat},
		{"short card ID", strings.Replace(sampleStep1, "331100D156000005500509728DB46EF9", "331100D1", 1), national.ErrCryptoLength},
	} {
		if _, err := national.ParseStep1(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestBasicSample(t *testing.T) {
	b, err := national.ParseBasic(sampleBasic)
	if err != nil {
		t.Fatal(err)
	}
	want := national.Basic{Region: "411600", CardID: "411600D156000005C38275EEFC9B9648", Historical: "008C544CB386844116018593CA",
		SpecVersion: "3.00", IssueDate: "20211203", ExpiryDate: "20311202"}
	if b != want {
		t.Errorf("parsed %+v", b)
	}
	// Our output always has the 11 fields.
	if got := b.String(); got != sampleBasic+"||" {
		t.Errorf("format %q", got)
	}
	for _, bad := range []string{"", "|", "a|b|c|", strings.TrimSuffix(sampleBasic, "|"), strings.Replace(sampleBasic, "411600D1", "Z11600D1", 1)} {
		if _, err := national.ParseBasic(bad); !errors.Is(err, national.ErrFormat) {
			t.Errorf("ParseBasic(%q): %v", bad, err)
		}
	}
}

func TestReadCardBasFromIdentity(t *testing.T) {
	id := &terminal.Identity{
		Mode: terminal.ModePSAM, Historical: []byte{0x00, 0x90}, SpecVersion: "3.00", IssueDate: "20230601", ExpiryDate: "20330531",
		CardNumber: "B98765432", PersonID: "650102199208154026", Name: "阿依古丽", TerminalID: "330100000001", DeviceID: "K|1",
	}
	cid, _ := record.ParseCardID("330100D15600000593E4B7026C1AF5D8")
	id.CardID = cid
	out, code := national.ReadCardBas(id, nil)
	want := "330100|650102199208154026|B98765432|330100D15600000593E4B7026C1AF5D8|阿依古丽|0090|3.00|20230601|20330531|330100000001|K1|"
	if out != want || code != 0 {
		t.Errorf("got %q %d\nwant %q", out, code, want)
	}
	gbk, err := national.EncodeGBK(out)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := national.DecodeGBK(gbk); err != nil || back != out || len(gbk) >= len(out) {
		t.Errorf("GBK round trip %q %v (%d bytes vs %d UTF-8)", back, err, len(gbk), len(out))
	}
	id.Mode, id.Reason = terminal.ModePublic, fmt.Errorf("%w: %w", terminal.ErrNoKeys, terminal.ErrNoPSAM)
	if _, code := national.ReadCardBas(id, nil); code != national.CodeNoPSAM {
		t.Errorf("degraded code %d", code)
	}
	if out, code := national.ReadCardBas(nil, fmt.Errorf("connect: %w", reader.ErrNoCard)); out != "" || code != national.CodeNoCard {
		t.Errorf("no card: %q %d", out, code)
	}
}

func TestStep2Key(t *testing.T) {
	r1, r2 := strings.Repeat("A1", 16), strings.Repeat("0f", 16)
	for _, tc := range []struct {
		in     string
		want   error
		result int // bytes of RESULT2
	}{
		{r1 + "|" + r2 + "|", nil, 16},
		{r1 + "||", nil, 0},
		{r1 + "|||", nil, 0},
		{r1 + "|" + r2 + "||", nil, 16},
		{r1 + "|" + r2, national.ErrFormat, 0},
		{r1 + "|" + r2 + "|x|", national.ErrFormat, 0},
		{"ZZ" + r1[2:] + "||", national.ErrCryptoChar, 0},
		{r1[:30] + "||", national.ErrCryptoLength, 0},
		{r1 + "|" + r2[:31] + "|", national.ErrCryptoLength, 0},
		{"|", national.ErrFormat, 0},
	} {
		k, err := national.ParseStep2Key(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("ParseStep2Key(%q): %v, want %v", tc.in, err, tc.want)
			continue
		}
		if err == nil && (len(k.Result1) != 16 || len(k.Result2) != tc.result) {
			t.Errorf("ParseStep2Key(%q) = %x %x", tc.in, k.Result1, k.Result2)
		}
	}
	if national.Code(fmt.Errorf("step 2: %w", national.ErrCryptoChar)) != -41 || national.Code(national.ErrCryptoLength) != -42 {
		t.Errorf("crypto data codes")
	}
	k := terminal.Step2Key{Result1: make([]byte, 16)}
	if got := national.FormatStep2Key(k); got != strings.Repeat("0", 32)+"||" {
		t.Errorf("format %q", got)
	}
}

func TestCode(t *testing.T) {
	sw := func(x uint16) error { return fmt.Errorf("card X: %w", &apdu.StatusError{SW: x}) }
	for _, tc := range []struct {
		name string
		err  error
		code int
	}{
		{"nil", nil, 0},
		{"no card", fmt.Errorf("connect: %w", reader.ErrNoCard), -2},
		{"removed", fmt.Errorf("transmit: %w", reader.ErrCardRemoved), -2},
		{"mute", reader.ErrCardMute, -4},
		{"reader gone", reader.ErrReaderGone, -11},
		{"pcscd down", reader.ErrServiceDown, -11},
		{"security status", sw(0x6982), -27010},
		{"file not found", sw(0x6A82), -27266},
		{"key not found", sw(0x6A88), -27272},
		{"insufficient", sw(0x9401), -37889},
		{"MAC invalid", sw(0x9302), -37634},
		{"locked app", sw(0x9303), -37635},
		{"external auth 1 try", sw(0x63C1), -25537},
		{"PIN wrong", &terminal.PINError{TriesLeft: 2, Err: &apdu.StatusError{SW: 0x63C2}}, -51},
		{"PIN blocked", fmt.Errorf("verify: %w", &terminal.PINError{Blocked: true, Err: &apdu.StatusError{SW: 0x6983}}), -52},
		{"not genuine", terminal.ErrNotGenuine, -21},
		{"HSM mismatch", terminal.ErrKeyServiceMismatch, -25},
		{"wrong card", terminal.ErrWrongCard, -22},
		{"no PSAM", terminal.ErrNoPSAM, -2201},
		{"no SM4", fmt.Errorf("%w: %w", terminal.ErrPSAMNoAlgorithm, sw(0x6A88)), -2202},
		{"no RKSSSE", fmt.Errorf("%w: %w", terminal.ErrPSAMNoRKSSSE, sw(0x6A88)), -2203},
		{"pad cancel", terminal.ErrPINCancelled, -31},
		{"pad timeout", terminal.ErrPINTimeout, -32},
		{"pad length", terminal.ErrPINFormat, -33},
		{"pad mismatch", terminal.ErrPINMismatch, -34},
		{"bad request", terminal.ErrBadRequest, -14},
		{"torn", &terminal.UnsettledError{Err: fmt.Errorf("%w: %w", terminal.ErrOutcomeUnknown, reader.ErrCardRemoved)}, national.CodeOutcomeUnknown},
		{"unsettled", &terminal.UnsettledError{Err: terminal.ErrUnsettled}, national.CodeUnsettled},
		{"lost", terminal.ErrLostCard, national.CodeLostCard},
		{"journal", terminal.ErrJournal, national.CodeJournal},
		{"not authorised", terminal.ErrNotAuthorised, national.CodeNotAuthorised},
		{"deadline", context.DeadlineExceeded, national.CodeTimeoutOrCancel},
		{"other", errors.New("disk on fire"), national.CodeOther},
	} {
		if got := national.Code(tc.err); got != tc.code {
			t.Errorf("%s: Code(%v) = %d, want %d", tc.name, tc.err, got, tc.code)
		}
		if msg := national.Message(national.Code(tc.err)); msg == "" || msg == "未知错误" {
			t.Errorf("%s: no message for %d", tc.name, national.Code(tc.err))
		}
	}
	r := national.ResultOf(&terminal.PINError{TriesLeft: 1, Err: &apdu.StatusError{SW: 0x63C1}})
	if r.Code != -51 || r.TriesLeft != 1 || r.Message != "密码错误" {
		t.Errorf("ResultOf %+v", r)
	}
}

func FuzzParseStep1(f *testing.F) {
	f.Add(sampleStep1)
	f.Add(sampleStep1 + "330100000001|")
	f.Add("|||||||||")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := national.ParseStep1(s)
		if err != nil {
			return
		}
		again, err := national.ParseStep1(national.FormatStep1(st))
		if err != nil || !reflect.DeepEqual(again, st) {
			t.Fatalf("round trip of %q: %+v %v", s, again, err)
		}
	})
}

func FuzzParseBasic(f *testing.F) {
	f.Add(sampleBasic)
	f.Add(sampleBasic + "330100000001|K1|")
	f.Add("|||||||||||")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := national.ParseBasic(s)
		if err != nil {
			return
		}
		again, err := national.ParseBasic(b.String())
		if err != nil || again != b {
			t.Fatalf("round trip of %q: %+v %v", s, again, err)
		}
	})
}

func FuzzParseStep2Key(f *testing.F) {
	f.Add(strings.Repeat("A1", 16) + "|" + strings.Repeat("0f", 16) + "|")
	f.Add(strings.Repeat("A1", 16) + "|||")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := national.ParseStep2Key(s)
		if err != nil {
			if national.Code(err) >= 0 {
				t.Fatalf("error %v without a national code", err)
			}
			return
		}
		again, err := national.ParseStep2Key(national.FormatStep2Key(k))
		if err != nil || !reflect.DeepEqual(again, k) {
			t.Fatalf("round trip of %q: %+v %v", s, again, err)
		}
	})
}
