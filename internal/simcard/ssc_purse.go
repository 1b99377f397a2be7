package simcard

import (
	"github.com/onecard-hub/onecard/apdu"
	"github.com/onecard-hub/onecard/sm"
)

// Transaction types (ssc-card-facts §3.3).
const (
	txLoadED     = 0x01
	txLoadEP     = 0x02
	txPurchaseED = 0x05
	txPurchaseEP = 0x06
)

const purseKeyIndex = 0x01 // the only DPK/DLK index the card holds

// algID is the algorithm identifier in INITIALIZE responses: 00 3DES,
// 04 SM4.
func algID(a sm.Alg) byte {
	if a == sm.AlgSM4 {
		return 0x04
	}
	return 0x00
}

// cmdInitialize: 80 50 01|00 01|02 0B <key index(1) amount(4) terminal(6)>.
func (s *SSC) cmdInitialize(c apdu.Command) ([]byte, uint16) {
	if (c.P1 != 0x00 && c.P1 != 0x01) || (c.P2 != 0x01 && c.P2 != 0x02) {
		return nil, apdu.SWWrongP1P2
	}
	if len(c.Data) != 11 {
		return nil, apdu.SWWrongLength
	}
	s.ses.tx = nil
	if c.Data[0] != purseKeyIndex {
		return nil, apdu.SWKeyIndex
	}
	load, pi := c.P1 == 0x00, int(c.P2)-1
	amount := u32(c.Data[1:5])
	terminal := append([]byte(nil), c.Data[5:11]...)
	p := &s.st.Purses[pi]
	if amount == 0 {
		return nil, apdu.SWWrongData
	}
	// Purchases (ED or EP) and ED loads need the PIN.
	if (!load || pi == 0) && !s.ses.pinOK {
		return nil, apdu.SWSecurityStatus
	}
	rnd, ok := s.random(4)
	if !ok {
		return nil, apdu.SWNoDiagnosis
	}
	tx := &pendingTx{load: load, purse: pi, amount: amount, terminal: terminal, rnd: rnd}
	head := append(be32(p.Balance), 0, 0)
	if load {
		if p.OnlineSeq == 0xFFFF {
			return nil, apdu.SWCounterMax
		}
		if uint64(p.Balance)+uint64(amount) > uint64(s.cfg.maxBalance) {
			return nil, apdu.SWConditions
		}
		tx.txType, tx.seq = txLoadED+byte(pi), p.OnlineSeq
		head[4], head[5] = byte(tx.seq>>8), byte(tx.seq)
		key, err := s.cfg.suite.LoadSessionKey(s.keys[sm.KeyDLK], rnd, head[4:6])
		if err != nil {
			return nil, apdu.SWNoDiagnosis
		}
		mac1, err := s.cfg.suite.MAC(key, nil, cat(be32(p.Balance), be32(amount), []byte{tx.txType}, terminal))
		if err != nil {
			return nil, apdu.SWNoDiagnosis
		}
		tx.key = key
		s.ses.tx = tx
		return cat(head, []byte{s.cfg.keyVersion, algID(s.cfg.suite.Alg)}, rnd, mac1), apdu.SWOK
	}
	if p.OfflineSeq == 0xFFFF {
		return nil, apdu.SWCounterMax
	}
	if amount > p.Balance {
		return nil, apdu.SWInsufficientBalance
	}
	tx.txType, tx.seq = txPurchaseED+byte(pi), p.OfflineSeq
	head[4], head[5] = byte(tx.seq>>8), byte(tx.seq)
	s.ses.tx = tx
	return cat(head, []byte{0, 0, 0, s.cfg.keyVersion, algID(s.cfg.suite.Alg)}, rnd), apdu.SWOK
}

// cmdDebit: 80 54 01 00 0F <terminal seq(4) date(4) time(3) MAC1(4)> 08
// → TAC(4) ‖ MAC2(4).
func (s *SSC) cmdDebit(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0x01 || c.P2 != 0x00 {
		return nil, apdu.SWWrongP1P2
	}
	if len(c.Data) != 15 || s.link.leTooShort(c, 8) {
		return nil, apdu.SWWrongLength
	}
	tx := s.ses.tx
	if tx == nil || tx.load {
		return nil, apdu.SWInvalidState
	}
	s.ses.tx = nil
	termSeq, date, tm, mac1 := c.Data[0:4], c.Data[4:8], c.Data[8:11], c.Data[11:15]
	seq := []byte{byte(tx.seq >> 8), byte(tx.seq)}
	key, err := s.cfg.suite.PurchaseSessionKey(s.keys[sm.KeyDPK], tx.rnd, seq, termSeq[2:4])
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	amount := be32(tx.amount)
	want, err := s.cfg.suite.MAC(key, nil, cat(amount, []byte{tx.txType}, tx.terminal, date, tm))
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	if !sm.VerifyMAC(mac1, want) {
		return nil, apdu.SWMACInvalid
	}
	p := &s.st.Purses[tx.purse]
	if tx.amount > p.Balance || p.OfflineSeq != tx.seq {
		return nil, apdu.SWConditions
	}
	tac, err := s.cfg.suite.TAC(s.keys[sm.KeyDTK], cat(amount, []byte{tx.txType}, tx.terminal, termSeq, date, tm))
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	mac2, err := s.cfg.suite.MAC(key, nil, amount)
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	old := s.st.clone()
	p.Balance -= tx.amount
	p.OfflineSeq++
	s.record(tx, date, tm, mac2, tac)
	if code := s.commit(old); code != apdu.SWOK {
		return nil, code
	}
	s.tear(TornAfterDebit)
	return cat(tac, mac2), apdu.SWOK
}

// cmdCredit: 80 52 00 00 0B <date(4) time(3) MAC2(4)> 04 → TAC(4).
func (s *SSC) cmdCredit(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0x00 || c.P2 != 0x00 {
		return nil, apdu.SWWrongP1P2
	}
	if len(c.Data) != 11 || s.link.leTooShort(c, 4) {
		return nil, apdu.SWWrongLength
	}
	tx := s.ses.tx
	if tx == nil || !tx.load {
		return nil, apdu.SWInvalidState
	}
	s.ses.tx = nil
	date, tm, mac2 := c.Data[0:4], c.Data[4:7], c.Data[7:11]
	amount := be32(tx.amount)
	want, err := s.cfg.suite.MAC(tx.key, nil, cat(amount, []byte{tx.txType}, tx.terminal, date, tm))
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	if !sm.VerifyMAC(mac2, want) {
		return nil, apdu.SWMACInvalid
	}
	p := &s.st.Purses[tx.purse]
	if uint64(p.Balance)+uint64(tx.amount) > uint64(s.cfg.maxBalance) || p.OnlineSeq != tx.seq {
		return nil, apdu.SWConditions
	}
	newBal := p.Balance + tx.amount
	seq := []byte{byte(tx.seq >> 8), byte(tx.seq)}
	tac, err := s.cfg.suite.TAC(s.keys[sm.KeyDTK], cat(be32(newBal), seq, amount, []byte{tx.txType}, tx.terminal, date, tm))
	if err != nil {
		return nil, apdu.SWNoDiagnosis
	}
	old := s.st.clone()
	p.Balance = newBal
	p.OnlineSeq++
	s.record(tx, date, tm, mac2, tac)
	if code := s.commit(old); code != apdu.SWOK {
		return nil, code
	}
	s.tear(TornAfterLoad)
	return tac, apdu.SWOK
}

// record keeps the proof of the transaction and prepends it to the log.
func (s *SSC) record(tx *pendingTx, date, tm, mac, tac []byte) {
	pr := proofRec{Type: tx.txType, Seq: tx.seq, MAC: append(hexBytes(nil), mac...), TAC: append(hexBytes(nil), tac...)}
	proofs := []proofRec{pr}
	for _, q := range s.st.Proofs {
		if q.Type != tx.txType {
			proofs = append(proofs, q)
		}
	}
	s.st.Proofs = proofs
	e := LogEntry{
		Seq: tx.seq, Amount: tx.amount, Type: tx.txType,
		Terminal: append(hexBytes(nil), tx.terminal...),
		Date:     append(hexBytes(nil), date...),
		Time:     append(hexBytes(nil), tm...),
	}
	s.st.Log = append([]LogEntry{e}, s.st.Log...)
	if len(s.st.Log) > logSize {
		s.st.Log = s.st.Log[:logSize]
	}
}

// cmdGetBalance: 80 5C 00 01|02 04. The ED balance needs the PIN.
func (s *SSC) cmdGetBalance(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0 || (c.P2 != 0x01 && c.P2 != 0x02) {
		return nil, apdu.SWWrongP1P2
	}
	if len(c.Data) != 0 {
		return nil, apdu.SWWrongLength
	}
	if c.P2 == 0x01 && !s.ses.pinOK {
		return nil, apdu.SWSecurityStatus
	}
	return be32(s.st.Purses[c.P2-1].Balance), apdu.SWOK
}

// cmdGetProof: 80 5A 00 <type> 02 <seq(2)> 08 → MAC2(4) ‖ TAC(4) of the
// last transaction of that type, if it used that counter value.
func (s *SSC) cmdGetProof(c apdu.Command) ([]byte, uint16) {
	if c.P1 != 0 || !validTxType(c.P2) {
		return nil, apdu.SWWrongP1P2
	}
	if len(c.Data) != 2 {
		return nil, apdu.SWWrongLength
	}
	seq := uint16(c.Data[0])<<8 | uint16(c.Data[1])
	for _, p := range s.st.Proofs {
		if p.Type == c.P2 && p.Seq == seq {
			return cat(p.MAC, p.TAC), apdu.SWOK
		}
	}
	return nil, apdu.SWMACUnavailable
}

func cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
