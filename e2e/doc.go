// Package e2e holds onecard's end-to-end tests: the real agent (package
// agent) with simulated cards behind the real PC/SC stack (pcscd with the
// vpcd driver, internal/pcsctest), and the kiosk page (package web/kiosk)
// driven in headless Chromium through the DevTools protocol
// (github.com/chromedp/chromedp).
//
// The tests need /usr/bin/chromium (Debian package chromium, installed by
// make deps with fonts-noto-cjk for the Chinese texts); without it they
// fail, never skip. With ONECARD_UPDATE_SCREENSHOTS=1 they also write
// the README's screenshots (docs/kiosk.png, docs/admin.png); normal runs
// leave the tree alone.
package e2e
