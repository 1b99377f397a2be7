package sm_test

import (
	"encoding/hex"
	"fmt"

	"github.com/onecard-hub/onecard/sm"
)

func mustDecode(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// The PBOC purchase of ssc-card-facts §6: session key, then MAC1.
func ExampleSuite_PurchaseSessionKey() {
	dpk := mustDecode("11223344556677888877665544332211")
	sk, err := sm.Suite3DES.PurchaseSessionKey(dpk, mustDecode("11223344"), mustDecode("0000"), mustDecode("0001"))
	if err != nil {
		panic(err)
	}
	// amount ‖ type 06 ‖ terminal ‖ date ‖ time
	mac1, err := sm.Suite3DES.MAC(sk, nil, mustDecode("00001000"+"06"+"001122334455"+"20120229"+"135100"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("SESPK %X\nMAC1 %X\n", sk, mac1)
	// Output:
	// SESPK 003238ABC57659DD
	// MAC1 F15CAB75
}

// A region whose SM4 cards use the XOR-fold MAC names it in configuration.
func ExampleParseSuite() {
	s, err := sm.ParseSuite("sm4-pboc,mac=xorfold")
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Name(), s.Alg, s.MACVariant == sm.MACXORFold)
	// Output: sm4-pboc,mac=xorfold sm4 true
}

// Raw r‖s signatures (as cards return them) convert to DER and back.
func ExampleRawToDER() {
	raw := make([]byte, 64)
	raw[31], raw[63] = 1, 2
	der, err := sm.RawToDER(raw)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%X\n", der)
	back, _ := sm.DERToRaw(der)
	fmt.Println(hex.EncodeToString(back) == hex.EncodeToString(raw))
	// Output:
	// 3006020101020102
	// true
}
