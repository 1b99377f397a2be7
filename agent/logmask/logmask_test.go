package logmask

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

type identity struct{ name, ssn string }

// LogValue mimics terminal.Identity: a LogValuer returning a group.
func (i identity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", i.name), slog.String("person_id", i.ssn))
}

func logJSON(t *testing.T, f func(l *slog.Logger)) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	l := slog.New(New(slog.NewJSONHandler(&buf, nil)))
	f(l)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("decode %q: %v", buf.String(), err)
	}
	return m
}

func TestHandlerMasks(t *testing.T) {
	const ssn = "650102199208154026"
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		key  string // dotted path into the JSON
		want string
	}{
		{"pin", func(l *slog.Logger) { l.Info("m", "pin", "123456") }, "pin", Redacted},
		{"new-pin dash", func(l *slog.Logger) { l.Info("m", "New-PIN", "123456") }, "New-PIN", Redacted},
		{"suffix key", func(l *slog.Logger) { l.Info("m", "issuer_key", []byte{1, 2}) }, "issuer_key", Redacted},
		{"token", func(l *slog.Logger) { l.Info("m", "token", "abc") }, "token", Redacted},
		{"name", func(l *slog.Logger) { l.Info("m", "name", "张三丰") }, "name", "张**"},
		{"person id", func(l *slog.Logger) { l.Info("m", "person_id", ssn) }, "person_id", "650*************26"},
		{"card number", func(l *slog.Logger) { l.Info("m", "card_number", "B98765432") }, "card_number", "*****5432"},
		{"birth date", func(l *slog.Logger) { l.Info("m", "birth_date", "19920815") }, "birth_date", "********"},
		{"ssn in other value", func(l *slog.Logger) { l.Info("m", "detail", "holder "+ssn+" paid") }, "detail", "holder 650*************26 paid"},
		{"ssn with X", func(l *slog.Logger) { l.Info("m", "detail", "11010519491231002X") }, "detail", "110*************2X"},
		{"ssn in error", func(l *slog.Logger) { l.Info("m", "err", fmt.Errorf("card of %s: %w", ssn, errors.New("x"))) }, "err", "card of 650*************26: x"},
		{"ssn in message", func(l *slog.Logger) { l.Info("read " + ssn) }, "msg", "read 650*************26"},
		{"ssn in struct", func(l *slog.Logger) { l.Info("m", "v", struct{ S string }{ssn}) }, "v", "{S:650*************26}"},
		{"group", func(l *slog.Logger) { l.Info("m", slog.Group("holder", "name", "李四", "pin", "1234")) }, "holder.pin", Redacted},
		{"group name", func(l *slog.Logger) { l.Info("m", slog.Group("g", "name", "李四")) }, "g.name", "李*"},
		{"log valuer", func(l *slog.Logger) { l.Info("m", "id", identity{"王五", ssn}) }, "id.person_id", "650*************26"},
		{"with attrs", func(l *slog.Logger) { l.With("person_id", ssn).Info("m") }, "person_id", "650*************26"},
		{"card ID untouched", func(l *slog.Logger) { l.Info("m", "card_id", "330100D15600000593E4B7026C1AF5D8") }, "card_id", "330100D15600000593E4B7026C1AF5D8"},
		{"19 digits untouched", func(l *slog.Logger) { l.Info("m", "v", "6501021992081540261") }, "v", "6501021992081540261"},
		{"17 digits untouched", func(l *slog.Logger) { l.Info("m", "v", "65010219920815402") }, "v", "65010219920815402"},
		{"hex neighbour untouched", func(l *slog.Logger) { l.Info("m", "v", "A650102199208154026") }, "v", "A650102199208154026"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := logJSON(t, tt.log)
			var v any = m
			for _, k := range strings.Split(tt.key, ".") {
				mm, ok := v.(map[string]any)
				if !ok {
					t.Fatalf("%s: not an object in %v", k, m)
				}
				v = mm[k]
			}
			if got := fmt.Sprint(v); got != tt.want {
				t.Errorf("%s = %q, want %q (record %v)", tt.key, got, tt.want, m)
			}
		})
	}
}

func TestHandlerKeepsOtherKinds(t *testing.T) {
	m := logJSON(t, func(l *slog.Logger) { l.Info("m", "amount", 650102199208154026, "ok", true) })
	if m["ok"] != true {
		t.Errorf("ok = %v", m["ok"])
	}
	if _, ok := m["amount"].(float64); !ok {
		t.Errorf("amount = %T %v, want a number", m["amount"], m["amount"])
	}
}

func TestHandlerLevelAndGroups(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	l := slog.New(New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: lv})))
	l.Info("hidden")
	if buf.Len() != 0 {
		t.Fatalf("info logged at warn level: %q", buf.String())
	}
	l.WithGroup("op").Warn("shown", "pin", "1234", "ssn", "650102199208154026")
	out := buf.String()
	if strings.Contains(out, "1234") || strings.Contains(out, "199208154") {
		t.Errorf("secret or ID leaked: %q", out)
	}
	if !strings.Contains(out, "op.pin="+Redacted) {
		t.Errorf("group lost: %q", out)
	}
}

func FuzzMaskString(f *testing.F) {
	for _, s := range []string{"650102199208154026", "x 11010519491231002X y", "", "12345678901234567", "6501021992081540261"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := MaskString(s)
		if len(out) != len(s) {
			t.Fatalf("length changed: %q -> %q", s, out)
		}
		if MaskString(out) != out {
			t.Fatalf("not idempotent: %q -> %q", s, out)
		}
	})
}
