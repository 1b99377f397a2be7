// Command sscard is onecard's drop-in replacement for the national reader
// interface library: built with -buildmode=c-shared it is libsscard.so
// (linux) or SSCardDriver.dll (windows/386 and windows/amd64, `make dll`),
// exporting iReadCardBas, iReadCardBas_HSM_Step1/_Step2, iVerifyPIN,
// iChangePIN, iReadCard, iDoDebit, iGetReaderInfo and SetPINCallback with
// the signatures of sscard.h. The C functions (shims.c) carry the
// national calling convention (__stdcall on windows/386) and call the Go
// implementations below, which forward every call to the local onecard
// agent through package sscard/bridge.
//
// Configuration, read once at the first call, from the environment:
//
//	ONECARD_AGENT           agent address (default 127.0.0.1:17300)
//	ONECARD_TOKEN_FILE      the agent's native-client token file (default
//	                        /var/lib/onecard/native-token,
//	                        %ProgramData%\onecard\native-token)
//	ONECARD_READER          agent lane to use (default: the agent picks)
//	ONECARD_SSCARD_TIMEOUT  bound of one call, a Go duration (default 40s)
//	ONECARD_SSCARD_LOG      log file (appended; default standard error)
//	ONECARD_SSCARD_DEBUG    1: log every call (function, code, duration)
package main

/*
#include <stdlib.h>
#include <string.h>
#include "sscard.h"
*/
import "C"

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/onecard-hub/onecard/sscard/bridge"
)

func main() {}

var (
	once sync.Once
	brg  *bridge.Bridge
	// pinCallback is the registered SSCardPINCallback (nil: none).
	pinCallback atomic.Pointer[C.SSCardPINCallback]
)

// pinSize is the buffer handed to the PIN callback.
const pinSize = 16

// get returns the process's Bridge, built from the environment at the
// first call.
func get() *bridge.Bridge {
	once.Do(func() {
		var w io.Writer = os.Stderr
		if p := os.Getenv("ONECARD_SSCARD_LOG"); p != "" {
			if f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
				w = f // kept open for the life of the process
			}
		}
		lvl := slog.LevelInfo
		if os.Getenv("ONECARD_SSCARD_DEBUG") == "1" {
			lvl = slog.LevelDebug
		}
		timeout, _ := time.ParseDuration(os.Getenv("ONECARD_SSCARD_TIMEOUT"))
		brg = bridge.New(bridge.Options{
			Addr: os.Getenv("ONECARD_AGENT"), TokenFile: os.Getenv("ONECARD_TOKEN_FILE"),
			Reader: os.Getenv("ONECARD_READER"), CallTimeout: timeout,
			PIN:    askPIN,
			Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})),
		})
	})
	return brg
}

// askPIN is the bridge's PINSource: the registered callback, or (nil,
// OK) without one (the agent's PIN pad).
func askPIN(_ context.Context, purpose bridge.PINPurpose) ([]byte, int) {
	cb := pinCallback.Load()
	if cb == nil {
		return nil, bridge.OK
	}
	buf := (*C.char)(C.calloc(pinSize, 1))
	if buf == nil {
		return nil, bridge.CodeOther
	}
	defer C.free(unsafe.Pointer(buf))
	defer C.memset(unsafe.Pointer(buf), 0, pinSize)
	if rc := int(C.sscard_call_pin(*cb, C.int(purpose), buf, pinSize)); rc != 0 {
		return nil, rc
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(buf)), pinSize)
	n := 0
	for n < pinSize && b[n] != 0 {
		n++
	}
	if n == pinSize { // no NUL inside the buffer
		return nil, bridge.CodePINLength
	}
	return append([]byte(nil), b[:n]...), bridge.OK
}

// input reads a caller's NUL-terminated GBK string, at most
// bridge.MaxInput bytes, as UTF-8. NULL reads as "". ok=false: too long
// or not GBK.
func input(p *C.char) (string, bool) {
	if p == nil {
		return "", true
	}
	var b []byte
	for i := 0; ; i++ {
		if i > bridge.MaxInput {
			return "", false
		}
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	s, err := bridge.DecodeInput(b)
	return s, err == nil
}

// output writes s (GBK, NUL-terminated, at most bridge.BufferSize bytes)
// to dst and returns code, or bridge.CodeOutputTruncated when a
// successful output had to be cut. NULL dst gives CodeBadParameter.
func output(dst *C.char, s string, code int) C.long {
	if dst == nil {
		return C.long(bridge.CodeBadParameter)
	}
	b, ec := bridge.Encode(s, bridge.BufferSize)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(dst)), len(b)), b)
	if code == bridge.OK {
		code = ec
	}
	return C.long(code)
}

// result writes r.Out to dst and returns r.Code (see output).
func result(dst *C.char, r bridge.Result) C.long { return output(dst, r.Out, r.Code) }

// badInput answers a malformed input string.
func badInput(dst *C.char) C.long {
	return output(dst, bridge.Message(bridge.CodeBadParameter)+"|", bridge.CodeBadParameter)
}

//export sscardGoReadCardBas
func sscardGoReadCardBas(iType C.int, pOutInfo *C.char) C.long {
	if pOutInfo == nil {
		return C.long(bridge.CodeBadParameter)
	}
	return result(pOutInfo, get().ReadCardBas(context.Background(), int(iType)))
}

//export sscardGoStep1
func sscardGoStep1(iType C.int, pOutInfo *C.char) C.long {
	if pOutInfo == nil {
		return C.long(bridge.CodeBadParameter)
	}
	return result(pOutInfo, get().Step1(context.Background(), int(iType)))
}

//export sscardGoStep2
func sscardGoStep2(pKey *C.char, pOutInfo *C.char) C.long {
	key, ok := input(pKey)
	if pOutInfo == nil || pKey == nil || !ok {
		return badInput(pOutInfo)
	}
	return result(pOutInfo, get().Step2(context.Background(), key))
}

//export sscardGoVerifyPIN
func sscardGoVerifyPIN(iType C.int, pOutInfo *C.char) C.long {
	if pOutInfo == nil {
		return C.long(bridge.CodeBadParameter)
	}
	return result(pOutInfo, get().VerifyPIN(context.Background(), int(iType)))
}

//export sscardGoChangePIN
func sscardGoChangePIN(iType C.int, pOutInfo *C.char) C.long {
	if pOutInfo == nil {
		return C.long(bridge.CodeBadParameter)
	}
	return result(pOutInfo, get().ChangePIN(context.Background(), int(iType)))
}

//export sscardGoReadCard
func sscardGoReadCard(iType, iAuthType C.int, pCardInfo, pFileAddr, pOutInfo *C.char) C.long {
	ci, ok1 := input(pCardInfo)
	fa, ok2 := input(pFileAddr)
	if pOutInfo == nil || pFileAddr == nil || !ok1 || !ok2 {
		return badInput(pOutInfo)
	}
	return result(pOutInfo, get().ReadCard(context.Background(), int(iType), int(iAuthType), ci, fa))
}

//export sscardGoDoDebit
func sscardGoDoDebit(iType C.int, pCardInfo, pPayInfo, pOutInfo *C.char) C.long {
	ci, ok1 := input(pCardInfo)
	pi, ok2 := input(pPayInfo)
	if pOutInfo == nil || pPayInfo == nil || !ok1 || !ok2 {
		return badInput(pOutInfo)
	}
	return result(pOutInfo, get().DoDebit(context.Background(), int(iType), ci, pi))
}

//export sscardGoGetReaderInfo
func sscardGoGetReaderInfo(pReaderSN, pPsamTermNo *C.char) C.long {
	if pReaderSN == nil || pPsamTermNo == nil {
		return C.long(bridge.CodeBadParameter)
	}
	sn, term, code := get().ReaderInfo(context.Background())
	rc := output(pReaderSN, sn, code)
	if rc2 := output(pPsamTermNo, term, code); rc == 0 {
		rc = rc2
	}
	return rc
}

//export sscardGoSetPINCallback
func sscardGoSetPINCallback(cb C.SSCardPINCallback) C.long {
	if cb == nil {
		pinCallback.Store(nil)
		return 0
	}
	pinCallback.Store(&cb)
	return 0
}
