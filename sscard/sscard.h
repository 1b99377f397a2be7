/*
 * sscard.h — onecard's drop-in replacement for the national social-security
 * card reader interface library (SSCardDriver.dll / 读卡通用接口).
 *
 * Every function forwards to the local onecard agent (loopback WebSocket,
 * docs/kiosk-api.md). Strings in and out are GBK; output fields are each
 * followed by '|'. Every output buffer must hold SSCARD_BUFFER_SIZE bytes:
 * the library never writes more (terminating NUL included); output that
 * does not fit is cut after the last whole field and the function returns
 * SSCARD_E_TRUNCATED. Return values: 0 success, national negative codes
 * (card status words as minus the unsigned SW, e.g. 6982 -> -27010).
 * Calling convention: __stdcall on 32-bit Windows (undecorated export
 * names), the platform's C convention elsewhere. Thread safe: calls are
 * served one at a time. README.md "Replacing SSCardDriver.dll" documents
 * the layouts and the environment variables.
 */
#ifndef ONECARD_SSCARD_H
#define ONECARD_SSCARD_H

#if defined(_WIN32)
#define SSCARD_API __stdcall
#else
#define SSCARD_API
#endif

#define SSCARD_BUFFER_SIZE 1024
#define SSCARD_E_TRUNCATED (-9010)

/* PIN purposes given to the PIN callback. */
#define SSCARD_PIN_VERIFY 1  /* iVerifyPIN, iDoDebit, iReadCard with iAuthType 1 */
#define SSCARD_PIN_CURRENT 2 /* iChangePIN: the current PIN */
#define SSCARD_PIN_NEW 3     /* iChangePIN: the new PIN */

/*
 * PIN callback (onecard extension; the vendor DLLs read the reader's PIN
 * pad): write 4 to 12 ASCII digits and a NUL into pPIN (iPINSize bytes,
 * 16) and return 0, or return a national code to fail the call with it
 * (-31 cancelled, -32 timeout). The library wipes pPIN afterwards.
 */
typedef long (SSCARD_API *SSCardPINCallback)(int iPurpose, char *pPIN, int iPINSize);

#ifdef __cplusplus
extern "C" {
#endif

long SSCARD_API iReadCardBas(int iType, char *pOutInfo);
long SSCARD_API iReadCardBas_HSM_Step1(int iType, char *pOutInfo);
long SSCARD_API iReadCardBas_HSM_Step2(char *pKey, char *pOutInfo);
long SSCARD_API iVerifyPIN(int iType, char *pOutInfo);
long SSCARD_API iChangePIN(int iType, char *pOutInfo);
long SSCARD_API iReadCard(int iType, int iAuthType, char *pCardInfo, char *pFileAddr, char *pOutInfo);
long SSCARD_API iDoDebit(int iType, char *pCardInfo, char *pPayInfo, char *pOutInfo);
long SSCARD_API iGetReaderInfo(char *pReaderSN, char *pPsamTermNo);
/* Registers (cb) or removes (NULL) the PIN callback; returns 0. */
long SSCARD_API SetPINCallback(SSCardPINCallback cb);

/* Internal: calls a PIN callback for the Go side. */
long sscard_call_pin(SSCardPINCallback cb, int iPurpose, char *pPIN, int iPINSize);

#ifdef __cplusplus
}
#endif

#endif
