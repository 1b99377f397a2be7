package record

import (
	"bytes"
	"testing"
)

// FuzzRecordDecode: the decoder never panics, and whatever it accepts is valid
// and re-encodes to exactly the input (the encoding is canonical).
func FuzzRecordDecode(f *testing.F) {
	for _, r := range samples(f) {
		b, err := r.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append(bytes.Clone(b), 0))
	}
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			if r != nil {
				t.Fatal("record with error")
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded record invalid: %v", err)
		}
		out, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("not canonical:\n in %X\nout %X", b, out)
		}
	})
}

// FuzzRecordEnvelope: never panics; accepted envelopes re-encode exactly.
func FuzzRecordEnvelope(f *testing.F) {
	priv := testKey(f, "record-fuzz")
	for _, r := range samples(f) {
		env, err := Seal(r, priv)
		if err != nil {
			f.Fatal(err)
		}
		b, err := env.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-3])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		out, err := e.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("not canonical (%v)", err)
		}
	})
}
