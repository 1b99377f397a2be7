// Package web holds the agent's embedded web assets: the JavaScript
// client of the kiosk API (onecard-client.js), served by the agent at
// /onecard-client.js, and the kiosk page (package web/kiosk), served at
// KioskPath.
package web

import (
	_ "embed"
	"net/http"

	"github.com/onecard-hub/onecard/web/kiosk"
)

// ClientJS is onecard-client.js.
//
//go:embed onecard-client.js
var ClientJS []byte

// KioskPath is where the agent serves the kiosk page:
// http://127.0.0.1:17300/kiosk/.
const KioskPath = kiosk.Prefix

// Kiosk serves the kiosk page's files under KioskPath; the agent mounts
// it with mux.Handle(web.KioskPath, web.Kiosk).
var Kiosk http.Handler = kiosk.Handler()
