package apdu

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		sw      uint16
		is      []error
		isNot   []error
		tries   int // -1: no VerifyError
		en, zh  string
		message string // exact Error(), when set
	}{
		{sw: 0x63C2, is: []error{ErrVerifyFailed}, isNot: []error{ErrAuthBlocked}, tries: 2,
			en: "2 tries left", zh: "还可尝试2次",
			message: "63C2: verification failed, 2 tries left (校验失败，还可尝试2次)"},
		{sw: 0x63C1, is: []error{ErrVerifyFailed}, tries: 1, en: "1 tries left", zh: "还可尝试1次"},
		{sw: 0x63C0, is: []error{ErrVerifyFailed, ErrAuthBlocked}, tries: 0, en: "no tries left", zh: "已锁定"},
		{sw: SWAuthBlocked, is: []error{ErrAuthBlocked}, isNot: []error{ErrVerifyFailed}, tries: -1, en: "blocked", zh: "锁定"},
		{sw: SWSecurityStatus, is: []error{ErrSecurityStatus}, tries: -1, en: "security status not satisfied", zh: "不满足安全状态"},
		{sw: SWWrongLength, is: []error{ErrWrongLength}, tries: -1, en: "wrong length", zh: "长度错误",
			message: "6700: wrong length (Lc or Le) (长度错误（Lc或Le）)"},
		{sw: 0x6781, is: []error{ErrWrongLength}, tries: -1, en: "wrong length", zh: "长度错误"},
		{sw: 0x6108, is: []error{ErrMoreData}, tries: -1, en: "8 more response bytes", zh: "还有8字节"},
		{sw: 0x6C0B, is: []error{ErrWrongLe}, tries: -1, en: "wrong Le, 11 bytes", zh: "实际可用11字节"},
		{sw: SWDataCorrupted, is: []error{ErrDataCorrupted}, tries: -1, en: "corrupted", zh: "可能有误"},
		{sw: SWMemoryFailure, is: []error{ErrMemoryFailure}, tries: -1, en: "memory failure", zh: "存储器错误"},
		{sw: SWInvalidState, is: []error{ErrInvalidState}, tries: -1, en: "invalid state", zh: "无效状态"},
		{sw: SWIncompatibleFile, is: []error{ErrIncompatibleFile}, tries: -1, en: "file structure", zh: "文件结构"},
		{sw: SWRefDataInvalid, is: []error{ErrRefDataInvalid}, tries: -1, en: "reference data invalid", zh: "引用数据无效"},
		{sw: SWConditions, is: []error{ErrConditions}, tries: -1, en: "conditions of use", zh: "使用条件不满足"},
		{sw: SWNoCurrentEF, is: []error{ErrNoCurrentEF}, tries: -1, en: "no current EF", zh: "无当前EF"},
		{sw: 0x6987, is: []error{ErrSMDataIncorrect}, tries: -1, en: "missing", zh: "缺少"},
		{sw: SWSMDataIncorrect, is: []error{ErrSMDataIncorrect}, tries: -1, en: "MAC incorrect", zh: "MAC不正确"},
		{sw: SWWrongData, is: []error{ErrWrongData}, tries: -1, en: "data field", zh: "数据域"},
		{sw: SWFuncNotSupported, is: []error{ErrFuncNotSupported}, tries: -1, en: "not supported", zh: "功能不支持"},
		{sw: SWFileNotFound, is: []error{ErrFileNotFound}, isNot: []error{ErrRecordNotFound}, tries: -1, en: "file or application not found", zh: "未找到文件"},
		{sw: SWRecordNotFound, is: []error{ErrRecordNotFound}, tries: -1, en: "record not found", zh: "未找到记录"},
		{sw: SWNoSpace, is: []error{ErrNoSpace}, tries: -1, en: "memory space", zh: "空间不足"},
		{sw: SWLcTLVInconsistent, is: []error{ErrWrongLength}, tries: -1, en: "TLV", zh: "TLV"},
		{sw: SWWrongP1P2, is: []error{ErrWrongP1P2}, tries: -1, en: "P1-P2", zh: "P1、P2"},
		{sw: SWLcP1P2Inconsistent, is: []error{ErrWrongLength}, tries: -1, en: "Lc inconsistent with P1-P2", zh: "Lc与P1、P2不一致"},
		{sw: SWRefNotFound, is: []error{ErrRefNotFound}, tries: -1, en: "key not found", zh: "密钥"},
		{sw: SWWrongParams, is: []error{ErrWrongP1P2}, tries: -1, en: "offset", zh: "偏移"},
		{sw: SWINSNotSupported, is: []error{ErrINSNotSupported}, tries: -1, en: "instruction not supported", zh: "指令不支持"},
		{sw: SWCLANotSupported, is: []error{ErrCLANotSupported}, tries: -1, en: "class not supported", zh: "类别不支持"},
		{sw: SWMACInvalid, is: []error{ErrMACInvalid}, tries: -1, en: "MAC invalid", zh: "MAC无效"},
		{sw: SWAppLocked, is: []error{ErrAppLocked}, tries: -1, en: "permanently locked", zh: "永久锁定"},
		{sw: SWInsufficientBalance, is: []error{ErrInsufficientBalance}, tries: -1, en: "insufficient balance", zh: "金额不足"},
		{sw: SWCounterMax, is: []error{ErrCounterMax}, tries: -1, en: "counter at maximum", zh: "计数器达到最大值"},
		{sw: SWKeyIndex, is: []error{ErrKeyIndex}, tries: -1, en: "key index", zh: "密钥索引不支持"},
		{sw: SWFileIDNotFound, is: []error{ErrFileNotFound}, tries: -1, en: "file ID not found", zh: "文件ID没有找到"},
		{sw: 0x9405, tries: -1, en: "9405", zh: "9405"},
		{sw: SWMACUnavailable, is: []error{ErrMACUnavailable}, tries: -1, en: "MAC or TAC unavailable", zh: "MAC或TAC不可用"},
		{sw: 0x6A8F, tries: -1, en: "wrong parameters", zh: "参数"},
		{sw: 0x1234, tries: -1, en: "unknown status word", zh: "未知状态字"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04X", tt.sw), func(t *testing.T) {
			err := Response{SW: tt.sw}.Err()
			if err == nil {
				t.Fatal("Err() = nil")
			}
			wrapped := fmt.Errorf("read record: %w", err)
			for _, s := range tt.is {
				if !errors.Is(wrapped, s) {
					t.Errorf("errors.Is(%v, %v) = false", wrapped, s)
				}
			}
			for _, s := range tt.isNot {
				if errors.Is(wrapped, s) {
					t.Errorf("errors.Is(%v, %v) = true", wrapped, s)
				}
			}
			var se *StatusError
			if !errors.As(wrapped, &se) || se.SW != tt.sw {
				t.Errorf("errors.As *StatusError: %v", se)
			}
			var ve VerifyError
			var vp *VerifyError
			gotV, gotP := errors.As(wrapped, &ve), errors.As(wrapped, &vp)
			if tt.tries < 0 {
				if gotV || gotP {
					t.Errorf("errors.As VerifyError succeeded for %04X", tt.sw)
				}
			} else {
				if !gotV || ve.TriesLeft != tt.tries {
					t.Errorf("errors.As(VerifyError) = %v, %+v; want tries %d", gotV, ve, tt.tries)
				}
				if !gotP || vp.TriesLeft != tt.tries {
					t.Errorf("errors.As(*VerifyError) = %v, %+v; want tries %d", gotP, vp, tt.tries)
				}
				if !errors.Is(ve, ErrVerifyFailed) {
					t.Error("VerifyError does not match ErrVerifyFailed")
				}
			}
			en, zh := StatusText(tt.sw)
			if !strings.Contains(en, tt.en) || !strings.Contains(zh, tt.zh) {
				t.Errorf("StatusText = %q, %q; want to contain %q, %q", en, zh, tt.en, tt.zh)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, fmt.Sprintf("%04X: ", tt.sw)) || !strings.Contains(msg, en) || !strings.Contains(msg, zh) {
				t.Errorf("Error() = %q", msg)
			}
			if tt.message != "" && msg != tt.message {
				t.Errorf("Error() = %q, want %q", msg, tt.message)
			}
		})
	}
}

func TestSWOKHasNoError(t *testing.T) {
	if err := (Response{SW: SWOK}).Err(); err != nil {
		t.Fatalf("Err() for 9000 = %v", err)
	}
}

func TestSWHelpers(t *testing.T) {
	tests := []struct {
		got, want uint16
	}{
		{SWVerifyFailed(2), 0x63C2},
		{SWVerifyFailed(0), 0x63C0},
		{SWVerifyFailed(15), 0x63CF},
		{SWVerifyFailed(20), 0x63CF},
		{SWVerifyFailed(-1), 0x63C0},
		{SWMoreData(8), 0x6108},
		{SWMoreData(256), 0x6100},
		{SWMoreData(300), 0x6100},
		{SWWrongLe(11), 0x6C0B},
		{SWWrongLe(256), 0x6C00},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("#%d: got %04X, want %04X", i, tt.got, tt.want)
		}
	}
}

// The pairs come from the national interface's error table
// (ssc-card-facts §2.3).
func TestNationalCode(t *testing.T) {
	tests := []struct {
		sw   uint16
		code int
	}{
		{0x9000, 0},
		{0x63C0, -25536}, {0x63C1, -25537}, {0x63C2, -25538},
		{0x6700, -26368},
		{0x6901, -26881},
		{0x6981, -27009}, {0x6982, -27010}, {0x6983, -27011}, {0x6984, -27012}, {0x6985, -27013},
		{0x6988, -27016},
		{0x6A80, -27264}, {0x6A81, -27265}, {0x6A82, -27266}, {0x6A83, -27267},
		{0x6A88, -27272},
		{0x9302, -37634}, {0x9303, -37635},
		{0x9403, -37891}, {0x9406, -37894},
	}
	for _, tt := range tests {
		if got := NationalCode(tt.sw); got != tt.code {
			t.Errorf("NationalCode(%04X) = %d, want %d", tt.sw, got, tt.code)
		}
		sw, ok := SWFromNationalCode(tt.code)
		if !ok || sw != tt.sw {
			t.Errorf("SWFromNationalCode(%d) = %04X, %v; want %04X", tt.code, sw, ok, tt.sw)
		}
	}
	for _, code := range []int{-1, -2, -24, -51, -2201, -2204, 1, -0x5FFF, -0x10000, -0xA000} {
		if sw, ok := SWFromNationalCode(code); ok {
			t.Errorf("SWFromNationalCode(%d) = %04X, true; want false", code, sw)
		}
	}
}
