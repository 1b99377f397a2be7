package record

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

var updateDoc = flag.Bool("update-doc", false, "rewrite the generated example in docs/record-encoding.md")

const (
	docPath   = "../../docs/record-encoding.md"
	docBegin  = "<!-- BEGIN GENERATED EXAMPLE (go test ./terminal/record -run TestRecordEncodingDoc -update-doc) -->"
	docEnd    = "<!-- END GENERATED EXAMPLE -->"
	docKeySet = "record-doc"
)

var docSigRE = regexp.MustCompile("signature \\(raw r‖s\\): `([0-9A-F]{128})`")

// TestRecordEncodingDoc keeps the worked example in docs/record-encoding.md true:
// the annotated bytes are regenerated from samplePay, and the envelope's
// signature (random per signing, so kept from the document) must verify
// with the test key set's terminal key.
func TestRecordEncodingDoc(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(doc, []byte(docBegin)), bytes.Index(doc, []byte(docEnd))
	if i < 0 || j < i {
		t.Fatalf("%s: generated-example markers missing", docPath)
	}
	old := string(doc[i+len(docBegin) : j])
	priv := testKey(t, docKeySet)
	r := samplePay(t)
	var sig []byte
	if m := docSigRE.FindStringSubmatch(old); m != nil {
		sig, _ = hex.DecodeString(m[1])
		if r.Verify(priv.PublicKey(), sig) != nil {
			sig = nil
		}
	}
	if sig == nil {
		if !*updateDoc {
			t.Fatalf("%s: the example signature is missing or does not verify; run with -update-doc", docPath)
		}
		if sig, err = r.Sign(priv); err != nil {
			t.Fatal(err)
		}
	}
	gen, err := renderDocExample(r, sig, priv.PublicKey().String())
	if err != nil {
		t.Fatal(err)
	}
	if gen == old {
		return
	}
	if !*updateDoc {
		t.Fatalf("%s: the generated example is stale; run go test ./terminal/record -run TestRecordEncodingDoc -update-doc\n--- want\n%s", docPath, gen)
	}
	out := append(bytes.Clone(doc[:i+len(docBegin)]), gen...)
	out = append(out, doc[j:]...)
	if err := os.WriteFile(docPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func renderDocExample(r *Record, sig []byte, pub string) (string, error) {
	var spans []span
	b, err := r.encode(&spans)
	if err != nil {
		return "", err
	}
	env, err := (&Envelope{Record: r, Signature: sig}).MarshalBinary()
	if err != nil {
		return "", err
	}
	if _, err := DecodeEnvelope(env); err != nil {
		return "", err
	}
	var w strings.Builder
	w.WriteString("\n\nThe sample purchase (kind pay, ED purse, with TAC) of the record tests, ")
	fmt.Fprintf(&w, "%d bytes:\n\n", len(b))
	w.WriteString("| offset | length | field | bytes (hex) | value |\n|---:|---:|---|---|---|\n")
	for _, s := range spans {
		fmt.Fprintf(&w, "| %d | %d | %s | `%X` | %s |\n", s.off, s.len, s.name, b[s.off:s.off+s.len], docValue(r, s.name))
	}
	w.WriteString("\nThe whole record:\n\n```\n")
	w.WriteString(hexLines(b))
	fmt.Fprintf(&w, "```\n\nSigned with the terminal key of `sm.TestKeySet(%q)` (public key `%s`), user ID `%s`:\n\n", docKeySet, pub, r.TerminalID)
	fmt.Fprintf(&w, "- signature (raw r‖s): `%X`\n", sig)
	fmt.Fprintf(&w, "- envelope, %d bytes = `4F435445` ‖ length `%04X` ‖ record ‖ `01` ‖ signature:\n\n```\n", len(env), len(b))
	w.WriteString(hexLines(env))
	w.WriteString("```\n\n")
	return w.String(), nil
}

func hexLines(b []byte) string {
	var w strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32)
		fmt.Fprintf(&w, "%X\n", b[:n])
		b = b[n:]
	}
	return w.String()
}

func docValue(r *Record, field string) string {
	switch field {
	case "magic":
		return `"OCTR"`
	case "version":
		return fmt.Sprint(Version)
	case "kind":
		return r.Kind.String()
	case "terminal_id":
		return r.TerminalID
	case "terminal_seq":
		return fmt.Sprint(r.TerminalSeq)
	case "card_id":
		return r.CardID.String()
	case "card_counter":
		return fmt.Sprint(r.CardCounter)
	case "tx_type":
		return fmt.Sprintf("%02X purchase ED", uint8(r.TxType))
	case "amount":
		return fmt.Sprintf("%d fen", r.Amount)
	case "balance_before":
		return fmt.Sprintf("%d fen", r.BalanceBefore)
	case "balance_after":
		return fmt.Sprintf("%d fen", r.BalanceAfter)
	case "card_date":
		return r.CardDate
	case "card_time":
		return r.CardTime
	case "at":
		return r.At.Format("2006-01-02T15:04:05.000Z")
	case "psam_seq":
		return fmt.Sprint(r.PSAMSeq)
	case "flags":
		return "internal auth ok, PIN verified"
	case "suite":
		return r.Suite
	case "fund":
		return r.Fund
	case "merchant":
		return r.Merchant
	case "card_number", "person_id", "holder_name":
		return "personal (fictitious)"
	case "challenge", "card_signature":
		return "empty"
	}
	return ""
}
