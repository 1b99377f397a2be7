// Package sm is onecard's cryptography: the Chinese GM algorithms (SM2
// signatures, SM3, SM4) and DES/3DES for second-generation cards, the
// PBOC-style card primitives built on them (80-padding CBC-MACs, key
// diversification, purchase/load session keys, TAC), issuer key sets and a
// self-test of the shipped binary against the standards' vectors.
//
// The GM algorithms come from github.com/emmansun/gmsm (pinned at v0.34.1);
// no gmsm type appears in this package's API, so the library can be replaced
// without touching callers.
//
// # Environment
//
// gmsm v0.34.1 reads two settings once, at process start (see
// internal/safeenv, which re-executes onecard with them):
//
//   - GODEBUG=cpu.adx=off: without it, on amd64 CPUs with BMI2/ADX, some
//     valid SM2 signatures are rejected (upstream issue #560). [SelfTest]
//     contains the published vector that triggers it, so a binary started
//     without the setting reports the failure instead of silently rejecting
//     payments.
//   - FORCE_SM4BLOCK_AESNI=1: without it single-block SM4, CBC encryption and
//     the CBC-MACs use variable-time table lookups.
//
// The package's own tests re-execute themselves with both (TestMain).
//
// # Crypto suites
//
// Regions differ in details the published sources leave unconfirmed (the
// SM4 MAC variant, how SM4 session keys are derived, which key makes the
// TAC). A [Suite] names every such choice, so a region's variant is
// configuration ([ParseSuite]) rather than a fork. [Suite3DES] is the
// confirmed PBOC 2.0 scheme of second-generation cards; [SuiteSM4] is the
// documented third-generation variant. See [Suite] for the exact rules.
//
// # SM2
//
// Signatures are made over the message with the signer's user ID (Z value,
// GB/T 32918.2); a nil or empty user ID means [DefaultUID]
// "1234567812345678". [Sign] returns DER; [RawToDER] and [DERToRaw] convert
// to and from the fixed 64-byte r‖s form cards use. [VerifyDigest] checks a
// signature over a precomputed 32-byte digest e.
//
// # Secrets
//
// Key material never appears in errors, logs or fmt output: [KeySet] and
// [PrivateKey] print redacted. Key files are written 0600 through a temporary
// file and a rename, and [LoadKeySet] refuses files readable by group or
// others. MAC comparisons are constant time ([VerifyMAC]).
package sm
