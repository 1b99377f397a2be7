package kiosk_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/onecard-hub/onecard/agent/kioskapi"
	"github.com/onecard-hub/onecard/web/kiosk"
)

func TestHandler(t *testing.T) {
	h := kiosk.Handler()
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
		body         string // a substring of the body
	}{
		{"GET", "/kiosk/", 200, "text/html; charset=utf-8", `<script src="kiosk.js">`},
		{"GET", "/kiosk/index.html", 200, "text/html; charset=utf-8", "screen-insert"},
		{"GET", "/kiosk/kiosk.js", 200, "text/javascript; charset=utf-8", "onecardKiosk"},
		{"GET", "/kiosk/kiosk.css", 200, "text/css; charset=utf-8", ".keypad"},
		{"GET", "/", 200, "text/html; charset=utf-8", "screen-pin"}, // mounted at the root
		{"GET", "/kiosk.js", 200, "text/javascript; charset=utf-8", "onecardKiosk"},
		{"HEAD", "/kiosk/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/kiosk", 301, "", ""},
		{"GET", "/kiosk/kiosk.go", 404, "", ""},
		{"GET", "/kiosk/../web.go", 404, "", ""},
		{"GET", "/kiosk/sub/index.html", 404, "", ""},
		{"POST", "/kiosk/", 405, "", ""},
		{"PUT", "/kiosk/kiosk.js", 405, "", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.status != http.StatusOK {
				return
			}
			hd := rec.Header()
			if got := hd.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := hd.Get("Content-Security-Policy"); got != kiosk.ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy %q", got)
			}
			if hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("headers %v", hd)
			}
			if tc.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD answered with a body of %d bytes", rec.Body.Len())
			}
			if !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
		})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/kiosk", nil))
	if loc := rec.Header().Get("Location"); loc != kiosk.Prefix {
		t.Errorf("/kiosk redirects to %q, want %q", loc, kiosk.Prefix)
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	// No inline script or style may be needed: the policy allows none.
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "data: 'self'; script"} {
		if strings.Contains(kiosk.ContentSecurityPolicy, bad) {
			t.Errorf("policy contains %s", bad)
		}
	}
	if m := regexp.MustCompile(`(^|[\s;])\*([\s;]|$)`).FindString(kiosk.ContentSecurityPolicy); m != "" {
		t.Errorf("policy allows any source: %q", m)
	}
	html := file(t, "index.html")
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`<script>`), regexp.MustCompile(`<script[^>]*>[^<]+</script>`),
		regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`<style`), regexp.MustCompile(`\son[a-z]+=`),
	} {
		if m := re.FindString(html); m != "" {
			t.Errorf("index.html has inline code the policy blocks: %q", m)
		}
	}
	if js := file(t, "kiosk.js"); strings.Contains(js, "innerHTML") || strings.Contains(js, "eval(") {
		t.Error("kiosk.js uses innerHTML or eval: personal data must go in with textContent")
	}
}

func file(t *testing.T, name string) string {
	t.Helper()
	b, ok := kiosk.File(name)
	if !ok {
		t.Fatalf("no embedded file %s", name)
	}
	return string(b)
}

// messages returns the message keys of one language block of kiosk.js.
func messages(t *testing.T, lang string) []string {
	t.Helper()
	js := file(t, "kiosk.js")
	start := strings.Index(js, "\n    "+lang+": {")
	if start < 0 {
		t.Fatalf("kiosk.js has no %s messages", lang)
	}
	end := strings.Index(js[start:], "\n    }")
	if end < 0 {
		t.Fatalf("kiosk.js: %s messages not closed", lang)
	}
	var keys []string
	for _, m := range regexp.MustCompile(`(\w+): '`).FindAllStringSubmatch(js[start:start+end], -1) {
		keys = append(keys, m[1])
	}
	slices.Sort(keys)
	return keys
}

// TestMessages: both languages have the same texts, and every text the
// page names (index.html's data-i18n, kiosk.js's setText) exists.
func TestMessages(t *testing.T) {
	zh, en := messages(t, "zh"), messages(t, "en")
	if len(zh) < 100 {
		t.Fatalf("only %d Chinese messages found", len(zh))
	}
	if !slices.Equal(zh, en) {
		for _, k := range zh {
			if !slices.Contains(en, k) {
				t.Errorf("message %s has no English text", k)
			}
		}
		for _, k := range en {
			if !slices.Contains(zh, k) {
				t.Errorf("message %s has no Chinese text", k)
			}
		}
	}
	var used []string
	for _, m := range regexp.MustCompile(`data-i18n="(\w+)"`).FindAllStringSubmatch(file(t, "index.html"), -1) {
		used = append(used, m[1])
	}
	for _, m := range regexp.MustCompile(`setText\([^,]+, '(\w+)'[,)]`).FindAllStringSubmatch(file(t, "kiosk.js"), -1) {
		used = append(used, m[1])
	}
	if len(used) < 50 {
		t.Fatalf("only %d message uses found", len(used))
	}
	for _, k := range used {
		if !slices.Contains(zh, k) {
			t.Errorf("the page uses message %s, which does not exist", k)
		}
	}
}

// TestErrorTexts: every error code of the kiosk API (docs/kiosk-api.md and
// package kioskapi) and of the JS client has a text in both languages.
func TestErrorTexts(t *testing.T) {
	doc, err := os.ReadFile("../../docs/kiosk-api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "\n## Errors")
	if !ok {
		t.Fatal("docs/kiosk-api.md has no Errors section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	codes := []string{
		// kioskapi's constants (a new code must get texts here too).
		kioskapi.CodeMalformed, kioskapi.CodeUnknownMethod, kioskapi.CodeBadRequest, kioskapi.CodeUnauthorised,
		kioskapi.CodePairingFailed, kioskapi.CodePairingDisabled, kioskapi.CodeRateLimited, kioskapi.CodeTooMany,
		kioskapi.CodeShuttingDown, kioskapi.CodeInternal, kioskapi.CodeUnavailable, kioskapi.CodeBusy,
		kioskapi.CodeReaderBusy, kioskapi.CodeNoCard, kioskapi.CodeCardRemoved, kioskapi.CodeCardMute,
		kioskapi.CodeReaderGone, kioskapi.CodeUnknownReader, kioskapi.CodeAmbiguousReader, kioskapi.CodeServiceDown,
		kioskapi.CodeTimeout, kioskapi.CodePINRequired, kioskapi.CodePINFormat, kioskapi.CodePINWrong,
		kioskapi.CodePINBlocked, kioskapi.CodePINCancelled, kioskapi.CodePINTimeout, kioskapi.CodePINMismatch,
		kioskapi.CodeInsufficient, kioskapi.CodeLostCard, kioskapi.CodeNotGenuine, kioskapi.CodeWrongCard,
		kioskapi.CodeOutcomeUnknown, kioskapi.CodeUnsettled, kioskapi.CodeNotAuthorised, kioskapi.CodeNoPSAM,
		kioskapi.CodeNoKeys, kioskapi.CodeKeyService, kioskapi.CodeJournal, kioskapi.CodeJournalFull,
		kioskapi.CodeCardError,
		// onecard-client.js's own codes.
		"agent_unavailable", "disconnected", "unsupported",
	}
	documented := 0
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(cell, -1) {
			codes = append(codes, m[1])
			documented++
		}
	}
	if documented < 30 {
		t.Fatalf("only %d codes read from the documentation's table", documented)
	}
	zh, en := messages(t, "zh"), messages(t, "en")
	for _, c := range codes {
		if !slices.Contains(zh, "err_"+c) || !slices.Contains(en, "err_"+c) {
			t.Errorf("error code %s has no text (err_%s) in both languages", c, c)
		}
	}
}
