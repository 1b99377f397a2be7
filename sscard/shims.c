/*
 * The exported functions with the national interface's names and calling
 * convention (sscard.h). Each calls its Go implementation (main.go, cgo
 * exports named sscardGo*, which use the C default convention). On 32-bit
 * Windows the .def file (sscard_386.def) exports them undecorated.
 */
#include "sscard.h"
#include "_cgo_export.h"

long SSCARD_API iReadCardBas(int iType, char *pOutInfo) { return sscardGoReadCardBas(iType, pOutInfo); }
long SSCARD_API iReadCardBas_HSM_Step1(int iType, char *pOutInfo) { return sscardGoStep1(iType, pOutInfo); }
long SSCARD_API iReadCardBas_HSM_Step2(char *pKey, char *pOutInfo) { return sscardGoStep2(pKey, pOutInfo); }
long SSCARD_API iVerifyPIN(int iType, char *pOutInfo) { return sscardGoVerifyPIN(iType, pOutInfo); }
long SSCARD_API iChangePIN(int iType, char *pOutInfo) { return sscardGoChangePIN(iType, pOutInfo); }
long SSCARD_API iReadCard(int iType, int iAuthType, char *pCardInfo, char *pFileAddr, char *pOutInfo) {
	return sscardGoReadCard(iType, iAuthType, pCardInfo, pFileAddr, pOutInfo);
}
long SSCARD_API iDoDebit(int iType, char *pCardInfo, char *pPayInfo, char *pOutInfo) {
	return sscardGoDoDebit(iType, pCardInfo, pPayInfo, pOutInfo);
}
long SSCARD_API iGetReaderInfo(char *pReaderSN, char *pPsamTermNo) { return sscardGoGetReaderInfo(pReaderSN, pPsamTermNo); }
long SSCARD_API SetPINCallback(SSCardPINCallback cb) { return sscardGoSetPINCallback(cb); }

long sscard_call_pin(SSCardPINCallback cb, int iPurpose, char *pPIN, int iPINSize) { return cb(iPurpose, pPIN, iPINSize); }
