// Package simcard simulates a China social-security card (社会保障卡, a
// small COS for second- and third-generation cards) and a PBOC-style PSAM,
// both as [virtual.Card] values for the in-process and vpcd readers of
// package reader/virtual.
//
// Cards are personalised from card files (YAML, `kind: ssc` or
// `kind: psam`, examples in testdata/cards) with [LoadFile], or in-process
// with [NewSSC] and [NewPSAM]. Keys are never written into a card file: it
// references an issuer key set, `keys: {test: LABEL}` (sm.TestKeySet) or
// `keys: {file: PATH}` (sm.LoadKeySet, relative to the card file).
//
// The facts document (ssc-card-facts.md) leaves many details open ([U]);
// the choices this simulator makes are listed here, and hub/proof follows
// the same written rules without sharing code.
//
// # Keys
//
//   - Card factor: the last 8 bytes of the 16-byte card ID (卡识别码), the
//     card-specific part. Every card key (RKSSSE, IRK, DPK, DLK, DTK, PUK,
//     STK) is the issuer master diversified once with it (Suite.Diversify):
//     3DES masters for generation 2 (Suite3DES), SM4 for generation 3
//     (SuiteSM4; `suite:` may name a regional variant of the same
//     algorithm).
//   - Card SM2 key (generation 3): d = 1 + (SM3("onecard card SM2 key v1" ‖
//     SM4 IRK master ‖ card ID) mod (n−2)); hub/proof derives the same
//     public key.
//
// # File system and reading
//
//   - SSSE (`sx1.sh.社会保障`) is the MF and is current after reset; FID 3F00
//     selects it too. Its FCI is 6F { 84 name, A5 { 9F0C 03 { 86 01 flag } } }
//     with flag 01 (3DES, generation 2) or 03 (SM4, generation 3). SELECT P2
//     0C suppresses the FCI. DF01–DF04 (AID D156000005 00..03) can be
//     selected and are empty.
//   - EF05 and EF06 are selected by FID with P1 00 or 02 while SSSE is
//     current. EF05 records 1..7 are tags 01..07; EF06 records 1..7 are tags
//     08, 09, 4E, 0A, 0B, 0C, 0D. READ RECORD P2 = SFI<<3 | mode: mode 4
//     reads record number P1, mode 0 the record whose tag is P1; SFI 0 is
//     the current EF, SFI 05/06 are EF05/EF06, SFI 18 the transaction log.
//   - Names longer than tag 09's 30 GBK bytes continue in tag 4E (20 bytes),
//     split at a character boundary; both are 00-padded.
//   - Read control (generation 3 only): EF05 tag 07 (card number) and every
//     EF06 record answer 6982 until an RKSSSE external authentication
//     succeeded in this session. Card ID, card type, version, initialising
//     organisation and dates are free. Generation 2 reads everything freely.
//
// # Authentication and PIN
//
//   - GET CHALLENGE (00 84 00 00 Le): Le 4, 8 or 16. Any other Le: 6C08 on
//     T=0; on T=1 Le 00 gives 8 bytes, other values 6700. The last
//     challenge is used (and consumed) by EXTERNAL AUTHENTICATE and
//     APPLICATION BLOCK.
//   - INTERNAL AUTHENTICATE (00 88 00 00 Lc data): data of 1 or 2 blocks
//     (8/16 bytes 3DES, 16/32 SM4) is encrypted ECB with the card's IRK and
//     returned.
//   - EXTERNAL AUTHENTICATE (00 82 00 0A Lc cryptogram): key ID 0A =
//     RKSSSE, the only key ID (others 6A88). cryptogram = ECB encryption
//     under the card's RKSSSE of the last challenge right-padded with 00 to
//     a block (an 8-byte challenge becomes 16 bytes on SM4 cards). Without
//     a challenge 6984; wrong length 6700; wrong value 63Cx with a
//     persistent counter (auth_tries, default 3), then 6983; success resets
//     the counter.
//   - VERIFY (00 20 00 00 Lc BCD PIN, 2–6 bytes, F-padded): 63Cx, then 6983
//     (persistent, pin_tries default 3); without data it reports 63Cx (or
//     9000 when already verified). CHANGE PIN (80 5E 01 00 Lc old FF new)
//     checks the old PIN with the same counter. The state file keeps an SM3
//     hash of the PIN, never the PIN.
//
// # E-purse (PBOC style)
//
//   - Two purses: ED (P2 01, types 01 load / 05 purchase) and EP (P2 02,
//     types 02 / 06), each with a balance, an online (load) and an offline
//     (purchase) counter. Purchases and ED loads need the PIN in this
//     session (6982); EP loads and EP GET BALANCE do not; ED GET BALANCE
//     does.
//   - Key index 01 only (else 9403); key version from the card file
//     (default 01); algorithm id 00 = 3DES, 04 = SM4.
//   - Purchase: session key = Suite.PurchaseSessionKey(DPK, rnd, offline
//     seq, terminal seq[2:4]); MAC1 over amount ‖ type ‖ terminal ‖ date ‖
//     time (9302 if wrong); MAC2 = MAC(session key, amount); TAC =
//     Suite.TAC(DTK, amount ‖ type ‖ terminal ‖ terminal seq ‖ date ‖ time).
//     Amount 0: 6A80; above balance: 9401.
//   - Load: session key = Suite.LoadSessionKey(DLK, rnd, online seq); MAC1
//     over balance ‖ amount ‖ type ‖ terminal; MAC2 over amount ‖ type ‖
//     terminal ‖ date ‖ time (9302 if wrong); TAC = Suite.TAC(DTK, new
//     balance ‖ online seq (before increment) ‖ amount ‖ type ‖ terminal ‖
//     date ‖ time). A load over the cap (max_balance, default 2^31−1 fen)
//     answers 6985 at INITIALIZE.
//   - A counter at FFFF answers 9402. DEBIT/CREDIT without a matching
//     INITIALIZE in this session answer 6901; the session is used up by one
//     DEBIT/CREDIT attempt.
//   - GET TRANSACTION PROOF (80 5A 00 type 02 seq 08) returns MAC2 ‖ TAC of
//     the last transaction of that type if it used that counter value (for
//     a load, the MAC2 the card accepted), else 9406.
//   - Transaction log: the last 10 transactions, newest = record 1, READ
//     RECORD SFI 18 (00 B2 n C4 17), PBOC 23-byte records: seq(2) ‖
//     overdraft 000000 ‖ amount(4) ‖ type ‖ terminal(6) ‖ date(4) ‖ time(3).
//
// # Blocking
//
// APPLICATION BLOCK is PBOC's 84 1E 00 P2 04 MAC, MAC = Suite.MAC(card
// STK, IV = last challenge right-padded with 00 to one block, 84 1E 00 P2
// 04); no challenge 6984, wrong MAC 6988. P2 00 blocks temporarily: every
// command but SELECT and GET RESPONSE then answers 6A81. P2 01 blocks
// permanently: they answer 9303. The flag is persistent; there is no
// unblock command.
//
// # SM2 (generation 3)
//
//   - PSO-style signature: 80 2A 9E 9A Lc message [Le 40] returns the
//     64-byte raw r‖s SM2 signature (SM3 with Z, default user ID
//     1234567812345678) of the message; needs the PIN (6982).
//   - Public key: GET DATA 00 CA 7F 49 (or CLA 80) returns 04 ‖ X ‖ Y.
//   - A generation-2 card answers 6D00 to both instructions.
//
// # Transport, ATR and test switches
//
//   - ATR: T=0 3B 6D 00 00 + 13 historical bytes; T=1 3B ED 00 00 81 31 FE
//     45 + historical bytes + TCK. Historical bytes come verbatim from
//     atr_historical or are derived: 00 90 (chip maker) ‖ 4F 43 <generation>
//     ‖ 86 60 ‖ issue date YYMMDD ‖ last 3 bytes of the card ID.
//   - T=0: data of case-3/4 commands is withheld behind 61xx until GET
//     RESPONSE (a shorter Le gets part and 61 rest, a longer one 6Cxx; any
//     other command drops it); a case-1/2 command whose Le differs from the
//     data length gets 6Cxx. T=1: data is returned directly (6Cxx only when
//     Le is shorter than the data; DEBIT, CREDIT and INIT SAM FOR PURCHASE,
//     which change persistent state, answer 6700 to a short Le before
//     acting).
//   - Malformed or extended-length APDUs 6700; unknown class 6E00; a known
//     instruction under the wrong class 6E00; unknown instruction 6D00.
//   - protocol, delay_ms and torn in the card file, or SetProtocol (from
//     the next PowerOn), SetDelay, SetTorn at run time. A torn DEBIT or
//     CREDIT is applied and persisted, then Transmit returns
//     virtual.ErrTorn and the card is unpowered (Transmit returns
//     ErrNotPowered until PowerOn).
//
// # Persistence
//
// Balances, counters, PIN and key retry counters, the blocked flag, proofs
// and the log survive PowerOff/PowerOn in the card object. Cards loaded
// from FILE.yaml also keep them in FILE.state.json (0600, written to a
// temporary file, synced and renamed after every persistent change). If
// that write fails the change is undone and the command answers 6581.
//
// # PSAM
//
//   - Selection: FID 3F00 or name sx1.sh.社会保障 (DES environment), FID
//     DDF1 or sx2.sh.社会保障, AID D15600000590 (DF01, the application the
//     purchase and crypto commands need: 6985 elsewhere), FID 0016.
//   - Terminal number (6 bytes BCD): READ BINARY of EF16, 00 B0 96 00 06
//     (SFI 16), or 00 B0 00 00 06 after selecting 0016.
//   - INIT SAM FOR PURCHASE 80 70 00 00 1C|24: card rnd(4) ‖ card offline
//     seq(2) ‖ amount(4) ‖ type(1) ‖ date(4) ‖ time(3) ‖ key version(1) ‖
//     alg id(1) ‖ card factor(8) [‖ second factor(8)] → terminal seq(4) ‖
//     MAC1(4). The card factor is the last 8 bytes of the card ID; with
//     Lc 24 the DPK master is diversified by the card factor, then by the
//     second factor. Alg id 00 = 3DES, 04 = SM4; other alg ids or a key
//     version other than the PSAM's (default 01) answer 9403. The 4-byte
//     terminal transaction counter (first value terminal_seq, default 1)
//     is used, incremented and persisted.
//   - CREDIT SAM FOR PURCHASE 80 72 00 00 04 MAC2: 9000, 9302 on mismatch,
//     6901 without a session (one attempt per session).
//   - INIT FOR DESCRYPT 80 1A usage flag Lc factors, then DES CRYPT 80 FA
//     P1 00 Lc data (P1 00: ECB encryption of whole blocks; P1 05: data =
//     IV (one block) ‖ message, returns the 4-byte Suite.MAC).
//
// In INIT FOR DESCRYPT the flag (P2) is the card's 9F0C algorithm flag:
// 01 = 3DES masters, 03 = SM4. The usage byte (P1) is levels<<5 | key
// type, levels being the number of 8-byte factors that must follow (Lc =
// 8 × levels; levels 0 uses the master itself). Key types (the one table,
// psamKeyUsage):
//
//	type 01  STK     maintenance: APPLICATION BLOCK MAC   e.g. usage 21
//	type 03  PUK     PIN unblock                          e.g. usage 23
//	type 07  RKSSSE  encryption: external authentication  e.g. usage 27
//	type 08  IRK     checking internal authentication     e.g. usage 28
//
// So a terminal makes the RKSSSE cryptogram with 80 1A 27 <flag> 08 <card
// factor> and 80 FA 00 00 Lc <padded challenge>, and checks an internal
// authentication by encrypting the same input under usage 28.
package simcard
