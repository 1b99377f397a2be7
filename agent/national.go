package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onecard-hub/onecard/agent/kioskapi"
	"github.com/onecard-hub/onecard/terminal"
	"github.com/onecard-hub/onecard/terminal/national"
)

// Native clients: the SSCardDriver replacement (sscard/) and other local
// programs. They authenticate with the token the agent writes at every
// start to StateDir/NativeTokenFile and see full identities; see
// kioskapi.Options.NativeToken.

// NativeTokenFile is the native-client token's file name in state_dir.
const NativeTokenFile = "native-token"

// nativeTokenMode lets the agent's group read the token: a HIS running
// under another account is granted access by joining that group. Others
// get nothing.
const nativeTokenMode = 0o640

// Compatibility methods of the national interface's two-step (HSM) read.
const (
	MethodIReadCardBasStep1 = "iReadCardBas_HSM_Step1"
	MethodIReadCardBasStep2 = "iReadCardBas_HSM_Step2"
)

// NativeTokenPath is the native-client token file.
func (a *Agent) NativeTokenPath() string { return a.cfg.StatePath(NativeTokenFile) }

// writeNativeToken writes a fresh random token (64 hex digits) to path,
// mode 0640, atomically (a reader never sees half a token), and returns
// it. A new token at every start: no stale token outlives the agent
// that issued it.
func writeNativeToken(path string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("write native-client token: %w", err)
	}
	tok := hex.EncodeToString(b)
	tmp, err := os.CreateTemp(filepath.Dir(path), NativeTokenFile+".tmp*")
	if err != nil {
		return "", fmt.Errorf("write native-client token: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing to remove
	_, err = tmp.WriteString(tok + "\n")
	if err == nil {
		err = tmp.Chmod(nativeTokenMode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", fmt.Errorf("write native-client token: %w", err)
	}
	return tok, nil
}

// compatResult is the answer of the national compatibility methods:
// failures are results with a negative code, as in the DLL.
type compatResult struct {
	Result   int    `json:"result"`
	POutInfo string `json:"pOutInfo"`
	Message  string `json:"message"`
}

func compatOf(out string, code int) compatResult {
	return compatResult{Result: code, POutInfo: out, Message: national.Message(code)}
}

// apiStep1 is iReadCardBas_HSM_Step1: params {"iType":1..4, "reader"?},
// pOutInfo the Step1 string (terminal/national.FormatStep1) for the
// caller's HSM. The lane's session keeps the card's answer for Step2.
func (a *Agent) apiStep1(_ context.Context, call *kioskapi.Call) (any, error) {
	var p struct {
		IType  int    `json:"iType"`
		Reader string `json:"reader"`
	}
	if err := call.Decode(&p); err != nil {
		return nil, err
	}
	if p.IType < 1 || p.IType > 4 {
		return compatOf("", national.CodeBadParameter), nil
	}
	var st terminal.Step1
	_, err := a.cardOp(call, MethodIReadCardBasStep1, p.Reader, nil, func(ctx context.Context, _ *lane, s *terminal.Session) (any, error) {
		var err error
		st, err = s.Step1(ctx)
		return nil, err
	})
	if err != nil {
		return compatOf("", compatCode(err)), nil
	}
	return compatOf(national.FormatStep1(st), national.OK), nil
}

// apiStep2 is iReadCardBas_HSM_Step2: params {"pKey":"RESULT1|RESULT2|",
// "reader"?}, pOutInfo the iReadCardBas string (masked unless the
// caller may see full identities). A malformed key answers -41, -42 or
// -23 without touching the card.
func (a *Agent) apiStep2(_ context.Context, call *kioskapi.Call) (any, error) {
	var p struct {
		PKey   string `json:"pKey"`
		Reader string `json:"reader"`
	}
	if err := call.Decode(&p); err != nil {
		return nil, err
	}
	key, err := national.ParseStep2Key(p.PKey)
	if err != nil {
		return compatOf("", national.Code(err)), nil
	}
	var id *terminal.Identity
	_, err = a.cardOp(call, MethodIReadCardBasStep2, p.Reader, nil, func(ctx context.Context, _ *lane, s *terminal.Session) (any, error) {
		var err error
		id, err = s.Step2(ctx, key)
		return nil, err
	})
	if err != nil {
		return compatOf("", compatCode(err)), nil
	}
	if !call.FullIdentity {
		id = id.Masked()
	}
	return compatOf(national.ReadCardBas(id, nil)), nil
}
