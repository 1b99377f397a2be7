package simcard

import (
	"bytes"

	"github.com/onecard-hub/onecard/apdu"
)

// ssseName is the SSSE DF name: "sx1.sh." + 社会保障 in GBK.
var ssseName = []byte{0x73, 0x78, 0x31, 0x2E, 0x73, 0x68, 0x2E, 0xC9, 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF}

// mohrssRID prefixes the sub-application AIDs D156000005 00..03 (DF01..DF04).
var mohrssRID = []byte{0xD1, 0x56, 0x00, 0x00, 0x05}

const (
	efNone = 0
	ef05   = 0x05
	ef06   = 0x06
	efLog  = 0x18 // PBOC transaction log, SFI 18
)

// protectedTag reports whether a third-generation card refuses to read
// the record (6982) before RKSSSE external authentication: the card number
// (EF05 tag 07) and all holder data in EF06. Card ID, type, version,
// initialising org and dates stay free.
func protectedTag(ef int, tag byte) bool {
	return ef == ef06 || (ef == ef05 && tag == 0x07)
}

// algFlag is the 9F0C algorithm flag in the SSSE FCI: 01 3DES, 03 SM4.
func (s *SSC) algFlag() byte {
	if s.cfg.gen == 3 {
		return 0x03
	}
	return 0x01
}

func tlv(tag []byte, value ...[]byte) []byte {
	v := bytes.Join(value, nil)
	out := append(append([]byte(nil), tag...), byte(len(v)))
	return append(out, v...)
}

func (s *SSC) ssseFCI() []byte {
	prop := tlv([]byte{0x9F, 0x0C}, tlv([]byte{0x86}, []byte{s.algFlag()}))
	return tlv([]byte{0x6F}, tlv([]byte{0x84}, ssseName), tlv([]byte{0xA5}, prop))
}

// cmdSelect: 00 A4 04 00|0C <name/AID>; 00 A4 00|02 00|0C <FID>.
func (s *SSC) cmdSelect(c apdu.Command) ([]byte, uint16) {
	if c.P2 != 0x00 && c.P2 != 0x0C {
		return nil, apdu.SWWrongP1P2
	}
	fci := func(b []byte) []byte {
		if c.P2 == 0x0C {
			return nil
		}
		return b
	}
	switch c.P1 {
	case 0x04:
		if len(c.Data) == 0 {
			return nil, apdu.SWWrongLength
		}
		if bytes.Equal(c.Data, ssseName) {
			s.ses.df, s.ses.ef = 0, efNone
			return fci(s.ssseFCI()), apdu.SWOK
		}
		if len(c.Data) == 6 && bytes.Equal(c.Data[:5], mohrssRID) && c.Data[5] <= 0x03 {
			s.ses.df, s.ses.ef = int(c.Data[5])+1, efNone
			return fci(tlv([]byte{0x6F}, tlv([]byte{0x84}, c.Data))), apdu.SWOK
		}
		return nil, apdu.SWFileNotFound
	case 0x00, 0x02:
		if len(c.Data) != 2 {
			return nil, apdu.SWWrongLength
		}
		fid := uint16(c.Data[0])<<8 | uint16(c.Data[1])
		switch {
		case fid == 0x3F00:
			s.ses.df, s.ses.ef = 0, efNone
			return fci(s.ssseFCI()), apdu.SWOK
		case s.ses.df == 0 && fid == 0xEF05:
			s.ses.ef = ef05
			return nil, apdu.SWOK
		case s.ses.df == 0 && fid == 0xEF06:
			s.ses.ef = ef06
			return nil, apdu.SWOK
		}
		return nil, apdu.SWFileNotFound
	}
	return nil, apdu.SWWrongP1P2
}

// cmdReadRecord: 00 B2 P1 P2 Le. P2 = SFI<<3 | mode; mode 4 reads record
// number P1, mode 0 the first record whose tag is P1. SFI 0 = current EF.
func (s *SSC) cmdReadRecord(c apdu.Command) ([]byte, uint16) {
	if len(c.Data) != 0 {
		return nil, apdu.SWWrongLength
	}
	sfi, mode := int(c.P2>>3), c.P2&0x07
	if mode != 0 && mode != 4 {
		return nil, apdu.SWWrongP1P2
	}
	if mode == 4 && c.P1 == 0 {
		return nil, apdu.SWWrongP1P2
	}
	ef := s.ses.ef
	if sfi != 0 {
		if s.ses.df != 0 || (sfi != ef05 && sfi != ef06 && sfi != efLog) {
			return nil, apdu.SWFileNotFound
		}
		ef = sfi
		s.ses.ef = sfi
	}
	var recs []apdu.Record
	switch ef {
	case efNone:
		return nil, apdu.SWNoCurrentEF
	case efLog:
		if mode != 4 {
			return nil, apdu.SWWrongP1P2
		}
		if int(c.P1) > len(s.st.Log) {
			return nil, apdu.SWRecordNotFound
		}
		return s.st.Log[c.P1-1].bytes(), apdu.SWOK
	case ef05:
		recs = s.cfg.ef05
	case ef06:
		recs = s.cfg.ef06
	}
	var rec *apdu.Record
	if mode == 4 {
		if int(c.P1) <= len(recs) {
			rec = &recs[c.P1-1]
		}
	} else {
		for i := range recs {
			if recs[i].Tag == c.P1 {
				rec = &recs[i]
				break
			}
		}
	}
	if rec == nil {
		return nil, apdu.SWRecordNotFound
	}
	if s.cfg.gen == 3 && !s.ses.rkOK && protectedTag(ef, rec.Tag) {
		return nil, apdu.SWSecurityStatus
	}
	return rec.Bytes(), apdu.SWOK
}
