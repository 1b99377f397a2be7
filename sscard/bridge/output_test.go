package bridge

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/onecard-hub/onecard/terminal/national"
)

// basSample is an iReadCardBas output quoted in ssc-card-facts §2.2; the
// named one is the agent's documented example (docs/kiosk-api.md).
const (
	basSample  = "411600|||411600D156000005C38275EEFC9B9648||008C544CB386844116018593CA|3.00|20211203|20311202|"
	basNamed   = "330100|650102199208154026|B98765432|330100D15600000593E4B7026C1AF5D8|阿依古丽·买买提艾力·阿不都热依木江|00904F43|3.00|20230601|20330531|330100000001|KIOSK-01|"
	step1Trace = "331100|00904A3001866033110000048A|03|331100D156000005500509728DB46EF9|456FE02E253F817D|A39FC0BF44CAEA80|4F5FB5932F10694D|2CFE760428888D8E|"
)

func TestCodesMatchNational(t *testing.T) {
	for _, c := range []struct{ ours, theirs int }{
		{OK, national.OK}, {CodeNoCard, national.CodeNoCard}, {CodeNoAnswer, national.CodeNoAnswer},
		{CodeReaderConnect, national.CodeReaderConnect}, {CodeUnsupported, national.CodeUnsupported},
		{CodeBadParameter, national.CodeBadParameter}, {CodeInputMismatch, national.CodeInputMismatch},
		{CodeInputInvalid, national.CodeInputInvalid}, {CodePINCancelled, national.CodePINCancelled},
		{CodePINLength, national.CodePINLength}, {CodePINWrong, national.CodePINWrong},
		{CodePINLocked, national.CodePINLocked}, {CodeNoPSAM, national.CodeNoPSAM}, {CodeOther, national.CodeOther},
	} {
		if c.ours != c.theirs {
			t.Errorf("code %d, terminal/national has %d", c.ours, c.theirs)
		}
		if Message(c.ours) != national.Message(c.theirs) {
			t.Errorf("code %d: text %q, terminal/national %q", c.ours, Message(c.ours), national.Message(c.theirs))
		}
	}
	if national.Message(CodeOutputTruncated) != "未知错误" {
		t.Errorf("CodeOutputTruncated %d is taken by terminal/national (%q)", CodeOutputTruncated, national.Message(CodeOutputTruncated))
	}
}

func gbkOf(t testing.TB, s string) []byte {
	t.Helper()
	b, err := national.EncodeGBK(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncode(t *testing.T) {
	named := gbkOf(t, basNamed)
	for _, tt := range []struct {
		name string
		in   string
		size int
		want []byte
		code int
	}{
		{"ascii", basSample, BufferSize, append([]byte(basSample), 0), OK},
		{"GBK name", basNamed, BufferSize, append(named, 0), OK},
		{"exact fit", "ab|cd|", 7, []byte("ab|cd|\x00"), OK},
		{"one byte short: whole fields only", "ab|cd|", 6, []byte("ab|\x00"), CodeOutputTruncated},
		{"nothing fits", "abc|", 3, []byte{0}, CodeOutputTruncated},
		{"size 1", "a|", 1, []byte{0}, CodeOutputTruncated},
		{"empty", "", 1, []byte{0}, OK},
		{"NUL dropped", "a\x00b|", 8, []byte("ab|\x00"), OK},
		{"not in GBK", "😀|", 8, []byte("?|\x00"), OK},
		{"double-byte field not split", "社会|保障|", 8, append(gbkOf(t, "社会|"), 0), CodeOutputTruncated},
		{"unterminated tail", "a|bc", 8, []byte("a|bc\x00"), OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, code := Encode(tt.in, tt.size)
			if !bytes.Equal(got, tt.want) || code != tt.code {
				t.Errorf("Encode(%q, %d) = %q, %d; want %q, %d", tt.in, tt.size, got, code, tt.want, tt.code)
			}
		})
	}
	if b, code := Encode("a|", 0); b != nil || code != CodeOutputTruncated {
		t.Errorf("Encode size 0 = %q, %d", b, code)
	}
	long := strings.Repeat("姓名字段|", 200) // 9 GBK bytes per field
	b, code := Encode(long, BufferSize)
	if code != CodeOutputTruncated || len(b) != 113*9+1 {
		t.Errorf("long output: %d bytes, code %d; want the 113 whole fields that fit 1023 bytes, and NUL", len(b), code)
	}
}

// FuzzEncode: whatever the text and the buffer size, the output fits the
// buffer, is NUL-terminated with no NUL inside, and is whole fields of
// the text: all of it with OK, else a prefix ending after a '|'.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{basSample, basNamed, step1Trace, "密码错误|2|", "SSSEEF05|01|$", "a\x00|b", "😀|x"} {
		f.Add(s, BufferSize)
		f.Add(s, 17)
	}
	f.Fuzz(func(t *testing.T, s string, size int) {
		if size > 4*BufferSize {
			size = size % (4 * BufferSize)
		}
		b, code := Encode(s, size)
		if size < 1 {
			if b != nil || code != CodeOutputTruncated {
				t.Fatalf("size %d: %q, %d", size, b, code)
			}
			return
		}
		if len(b) == 0 || len(b) > size || b[len(b)-1] != 0 || bytes.IndexByte(b[:len(b)-1], 0) >= 0 {
			t.Fatalf("Encode(%q, %d) = %q: must fit, end with the only NUL", s, size, b)
		}
		full := toGBK(strings.ReplaceAll(s, "\x00", ""))
		text := b[:len(b)-1]
		if !bytes.HasPrefix([]byte(full), text) {
			t.Fatalf("Encode(%q, %d) = %q: not a prefix of the whole text %q", s, size, text, full)
		}
		switch code {
		case OK:
			if len(text) != len(full) {
				t.Fatalf("OK but %d of %d bytes", len(text), len(full))
			}
		case CodeOutputTruncated:
			dec, err := simplifiedchinese.GBK.NewDecoder().Bytes(text)
			if err != nil || (len(dec) > 0 && !strings.HasSuffix(string(dec), "|")) {
				t.Fatalf("truncated output %q does not end after a field (%v)", dec, err)
			}
			if len(full) <= size-1 {
				t.Fatalf("truncated although %d bytes fit %d", len(full), size)
			}
		default:
			t.Fatalf("code %d", code)
		}
	})
}

func FuzzField(f *testing.F) {
	for _, s := range []string{"阿依古丽·买买提", "a|b$c\x00d\n", basSample} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := Field(s)
		if strings.ContainsAny(v, "|$\x00\r\n\t\x7f") || Field(v) != v {
			t.Fatalf("Field(%q) = %q", s, v)
		}
		if utf8.ValidString(s) && !utf8.ValidString(v) {
			t.Fatalf("Field(%q) broke UTF-8", s)
		}
	})
}

func TestParsePayInfo(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want PayInfo
		ok   bool
	}{
		{"1234|H001|310|", PayInfo{1234, "H001", "310"}, true},
		{"1234|H001|", PayInfo{1234, "H001", ""}, true},
		{"1|", PayInfo{Amount: 1}, true},
		{"4294967295|||", PayInfo{Amount: 4294967295}, true},
		{"4294967296|", PayInfo{}, false},
		{"0|", PayInfo{}, false},
		{"12.34|", PayInfo{}, false},
		{"-5|", PayInfo{}, false},
		{"|H001|", PayInfo{}, false},
		{"1234|H001|310", PayInfo{}, false},
		{"1234|H001|310|x|", PayInfo{}, false},
		{"1234|H 01|", PayInfo{}, false},
		{"1234|医院|", PayInfo{}, false},
		{"1234|" + strings.Repeat("M", 65) + "|", PayInfo{}, false},
		{"", PayInfo{}, false},
	} {
		got, err := ParsePayInfo(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePayInfo(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParsePayInfo(f *testing.F) {
	for _, s := range []string{"1234|H001|310|", "1|", "4294967295|||", "0|", "|x|", "12a|"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePayInfo(s)
		if err != nil {
			return
		}
		again, err := ParsePayInfo(fmt.Sprintf("%d|%s|%s|", p.Amount, p.Merchant, p.Fund))
		if err != nil || again != p || p.Amount == 0 {
			t.Fatalf("%q -> %+v does not round-trip: %+v, %v", s, p, again, err)
		}
	})
}

func TestParseCardInfo(t *testing.T) {
	id := "330100D15600000593E4B7026C1AF5D8"
	for _, tt := range []struct {
		in   string
		want CardInfo
		ok   bool
	}{
		{"", CardInfo{}, true},
		{id + "|B98765432|", CardInfo{id, "B98765432"}, true},
		{strings.ToLower(id) + "|", CardInfo{CardID: id}, true},
		{"|B98765432|", CardInfo{CardNumber: "B98765432"}, true},
		{id + "|B98765432", CardInfo{}, false},
		{id[:30] + "|", CardInfo{}, false},
		{id + "|a|b|", CardInfo{}, false},
	} {
		got, err := ParseCardInfo(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseCardInfo(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	ci := CardInfo{CardID: id}
	if !ci.Matches(strings.ToLower(id), "X") || ci.Matches("330100D15600000593E4B7026C1AF5D9", "X") {
		t.Error("Matches compares the card ID case-insensitively and exactly")
	}
}

func FuzzParseCardInfo(f *testing.F) {
	for _, s := range []string{"", "330100D15600000593E4B7026C1AF5D8|B98765432|", "|x|", "a|"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ci, err := ParseCardInfo(s)
		if err != nil || ci == (CardInfo{}) {
			return
		}
		again, err := ParseCardInfo(ci.CardID + "|" + ci.CardNumber + "|")
		if err != nil || again != ci {
			t.Fatalf("%q -> %+v does not round-trip: %+v, %v", s, ci, again, err)
		}
	})
}

func TestParseFileAddr(t *testing.T) {
	got, err := ParseFileAddr("SSSEEF05|06|07|$ssseef06|08|4e|$")
	want := []FileRequest{{"SSSEEF05", []byte{6, 7}}, {"SSSEEF06", []byte{8, 0x4E}}}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParseFileAddr = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "$", "SSSEEF05|$", "SSSEEF05|06|", "SSSEEF05|6|$", "SSSEEF05|0G|$", "|06|$", "SSSEEF05|06$", "SSSEEF05|06|$$"} {
		if r, err := ParseFileAddr(bad); err == nil {
			t.Errorf("ParseFileAddr(%q) = %v, want an error", bad, r)
		}
	}
	out := FormatFileData(want, func(file string, tag byte) string { return fmt.Sprintf("%s:%02X|$", file[4:], tag) })
	if out != "SSSEEF05|EF05:06|EF05:07|$SSSEEF06|EF06:08|EF06:4E|$" {
		t.Errorf("FormatFileData = %q (separators in values must be dropped)", out)
	}
}

// FuzzParseFileAddr: a parsed pFileAddr formats back (tags as values) to
// its normalised self, and values never break the skeleton.
func FuzzParseFileAddr(f *testing.F) {
	for _, s := range []string{"SSSEEF05|06|07|$SSSEEF06|08|09|$", "SSSEEF05|01|$", "a|0a|$b|ff|$", "$", "x|1|$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		reqs, err := ParseFileAddr(s)
		if err != nil {
			return
		}
		out := FormatFileData(reqs, func(_ string, tag byte) string { return fmt.Sprintf("%02X", tag) })
		again, err := ParseFileAddr(out)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(reqs) {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, reqs, out, again, err)
		}
		hostile := FormatFileData(reqs, func(string, byte) string { return "|$|" })
		if strings.Count(hostile, "$") != len(reqs) {
			t.Fatalf("values broke the skeleton: %q", hostile)
		}
	})
}

func TestDebitString(t *testing.T) {
	d := Debit{CardID: "330100D15600000593E4B7026C1AF5D8", TerminalID: "330100000001", TerminalSeq: 96405707292673,
		Amount: 1234, BalanceBefore: 120000, BalanceAfter: 118766, Date: "20250102", Time: "101112", TAC: "AAB01095"}
	want := "330100D15600000593E4B7026C1AF5D8|330100000001|96405707292673|1234|120000|118766|20250102|101112|AAB01095|"
	if d.String() != want {
		t.Errorf("Debit = %q, want %q", d.String(), want)
	}
}

func TestAPIErrorResult(t *testing.T) {
	two := 2
	for _, tt := range []struct {
		e    apiError
		code int
		out  string
	}{
		{apiError{Code: "pin_wrong", TriesLeft: &two, National: -51, NationalMessage: "密码错误"}, -51, "密码错误|2|"},
		{apiError{Code: "pin_blocked", National: -52, NationalMessage: "密码已锁定"}, -52, "密码已锁定|"},
		{apiError{Code: "card_error", National: -27010, NationalMessage: "安全状态不满足"}, -27010, "安全状态不满足|"},
		{apiError{Code: "no_card"}, CodeNoCard, "无卡|"},
		{apiError{Code: "busy"}, CodeReaderConnect, "读卡器连接错|"},
		{apiError{Code: "pin_required"}, CodeUnsupported, "不支持该命令|"},
		{apiError{Code: "bad_request"}, CodeBadParameter, "参数错误|"},
		{apiError{Code: "something_new"}, CodeOther, "其他错误|"},
	} {
		if r := tt.e.result(); r.Code != tt.code || r.Out != tt.out {
			t.Errorf("%+v -> %+v, want %d %q", tt.e, r, tt.code, tt.out)
		}
	}
}
