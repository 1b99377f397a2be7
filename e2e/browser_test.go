package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/onecard-hub/onecard/internal/logbuf"
)

// chromiumPath is Debian's chromium (package chromium, installed by make
// deps).
const chromiumPath = "/usr/bin/chromium"

// screenshotsEnv makes the tests write the README's screenshots.
const screenshotsEnv = "ONECARD_UPDATE_SCREENSHOTS"

// actionTimeout bounds one browser step (a wait included).
const actionTimeout = 20 * time.Second

// syncBuffer is a goroutine-safe log of a process's or component's output.
type syncBuffer = logbuf.Buffer

// browser is a headless Chromium for one test.
type browser struct {
	t   *testing.T
	ctx context.Context // the browser's first tab (chromedp context)
	log *syncBuffer
}

// startBrowser launches /usr/bin/chromium headless with a fresh profile;
// t.Cleanup stops it. A missing Chromium fails the test.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium is missing (%v): run make deps (Debian packages chromium and fonts-noto-cjk)", err)
	}
	log := &syncBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "zh-CN"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(log),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, log: log}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output:\n%s", tail(log.String(), 8<<10))
		}
	})
	// The first action starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, tail(log.String(), 4<<10))
	}
	return b
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// page is one tab.
type page struct {
	t       *testing.T
	ctx     context.Context
	cancel  context.CancelFunc
	console *syncBuffer
}

// open opens url in a new tab (closed by t.Cleanup or close).
func (b *browser) open(url string) *page {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	p := &page{t: b.t, ctx: ctx, cancel: cancel, console: &syncBuffer{}}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, string(a.Value))
				}
			}
			fmt.Fprintf(p.console, "console.%s %s\n", e.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			desc := ""
			if d.Exception != nil {
				desc = d.Exception.Description
			}
			fmt.Fprintf(p.console, "exception %s %s\n", d.Text, desc)
		}
	}); err != nil {
		b.t.Fatalf("open a tab: %v", err)
	}
	b.t.Cleanup(func() {
		cancel()
		if b.t.Failed() && p.console.String() != "" {
			b.t.Logf("page console (%s):\n%s", url, tail(p.console.String(), 8<<10))
		}
	})
	p.run("open "+url, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(url))
	return p
}

func (p *page) close() { p.cancel() }

// run runs browser actions, failing the test on error.
func (p *page) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v (page state %+v)", what, err, p.stateNow())
	}
}

// evalJS evaluates JavaScript (awaiting a promise) and decodes the
// result into a T.
func evalJS[T any](p *page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v (page state %+v)", tail(js, 80), err, p.stateNow())
	}
	return v
}

// kioskState is window.onecardKiosk.state().
type kioskState struct {
	Screen      string `json:"screen"`
	Busy        bool   `json:"busy"`
	Stage       string `json:"stage"`
	Lang        string `json:"lang"`
	Authorised  bool   `json:"authorised"`
	CardPresent bool   `json:"cardPresent"`
	Error       string `json:"error"`
}

const stateJS = `window.onecardKiosk ? window.onecardKiosk.state() : {screen: "(no kiosk script)"}`

func (p *page) stateNow() kioskState {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	st, _ := chromedp.Run(ctx, chromedp.Evaluate[kioskState](stateJS))
	return st
}

// wait polls the page's state until cond holds, failing after
// actionTimeout.
func (p *page) wait(what string, cond func(kioskState) bool) kioskState {
	p.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		st, err := chromedp.Run(ctx, chromedp.Evaluate[kioskState](stateJS))
		cancel()
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waiting for %s: page state %+v (err %v)", what, st, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitScreen waits until the page shows screen (and is not busy).
func (p *page) waitScreen(screen string) kioskState {
	p.t.Helper()
	return p.wait("screen "+screen, func(s kioskState) bool { return s.Screen == screen && !s.Busy })
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.run("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// keys clicks the on-screen keypad's keys inside the keypad selector.
func (p *page) keys(keypad, digits string) {
	p.t.Helper()
	for _, d := range digits {
		p.click(fmt.Sprintf(`%s button[data-key="%c"]`, keypad, d))
	}
}

// waitVisible waits until sel is rendered.
func waitVisible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// text returns the visible text of sel.
func (p *page) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.t.Fatalf("text of %s: %v (page state %+v)", sel, err, p.stateNow())
	}
	return strings.TrimSpace(s)
}

// visible reports whether sel matches an element that is rendered.
func (p *page) visible(sel string) bool {
	p.t.Helper()
	js := fmt.Sprintf(`(function(){var e=document.querySelector(%s);return !!(e&&e.offsetParent!==null);})()`, jsonString(sel))
	return evalJS[bool](p, js)
}

// layoutJS lists what does not fit the viewport on the current screen:
// horizontal overflow, headings and buttons outside the viewport, buttons
// smaller than 48 px (touch target).
const layoutJS = `(function(){
  var bad = [];
  if (document.documentElement.scrollWidth > window.innerWidth + 1) bad.push('horizontal overflow ' + document.documentElement.scrollWidth);
  if (document.documentElement.scrollHeight > window.innerHeight + 1) bad.push('vertical overflow ' + document.documentElement.scrollHeight);
  var s = document.querySelector('.screen:not([hidden])');
  if (!s) return ['no screen'];
  var els = s.querySelectorAll('button, h1, .amount, .pin-dots, .receipt');
  for (var i = 0; i < els.length; i++) {
    var e = els[i];
    if (e.offsetParent === null) continue;
    var r = e.getBoundingClientRect();
    var name = (e.id || e.getAttribute('data-key') || e.getAttribute('data-service') || e.textContent.trim()).slice(0, 24);
    if (r.bottom > window.innerHeight + 1 || r.right > window.innerWidth + 1 || r.left < -1 || r.top < -1)
      bad.push(name + ' outside the viewport ' + JSON.stringify([r.left, r.top, r.right, r.bottom]));
    if (e.tagName === 'BUTTON' && (r.height < 48 || r.width < 48)) bad.push(name + ' smaller than 48px');
  }
  return bad;
})()`

// checkLayout checks the current screen at the two kiosk sizes.
func (p *page) checkLayout(screen string) {
	p.t.Helper()
	for _, sz := range [][2]int64{{1024, 768}, {1280, 800}} {
		p.run("resize", chromedp.EmulateViewport(sz[0], sz[1]))
		bad := evalJS[[]string](p, layoutJS)
		if len(bad) > 0 {
			p.t.Errorf("screen %s at %dx%d: %s", screen, sz[0], sz[1], strings.Join(bad, "; "))
		}
	}
}

// screenshot writes a PNG of the viewport to docs/NAME when
// ONECARD_UPDATE_SCREENSHOTS=1 (normal runs leave the tree alone).
func (p *page) screenshot(name string) {
	p.t.Helper()
	if os.Getenv(screenshotsEnv) != "1" {
		return
	}
	p.run("screenshot size", chromedp.EmulateViewport(1280, 800), chromedp.Sleep(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join("..", "docs", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("wrote %s (%d bytes)", path, len(png))
}

// jsonString returns s as a JavaScript string literal.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
