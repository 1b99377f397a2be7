package benchreport

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteSVG draws the scaling curve: ingest rate (left axis, solid) and p99
// latency (right axis, dashed) over the agent count on a log scale. Fewer
// than one point gives an empty chart with a note.
func WriteSVG(w io.Writer, pts []ScalingPoint) error {
	const W, H, L, R, T, B = 640.0, 360.0, 70.0, 70.0, 40.0, 50.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" text-anchor="middle" font-size="14">Hub ingest and p99 batch latency vs agents</text>`+"\n", W/2)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", L, H-B, W-R, H-B)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", L, T, L, H-B)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", W-R, T, W-R, H-B)
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">no scaling data</text>`+"\n</svg>\n", W/2, H/2)
		_, err := io.WriteString(w, b.String())
		return err
	}
	maxA, maxRate, maxP99 := 1.0, 1.0, 1.0
	for _, p := range pts {
		maxA = math.Max(maxA, float64(p.Agents))
		maxRate = math.Max(maxRate, p.Rate)
		maxP99 = math.Max(maxP99, p.P99ms)
	}
	maxRate *= 1.1
	maxP99 *= 1.1
	logMax := math.Max(math.Log10(maxA), 1)
	x := func(a int) float64 { return L + (W-L-R)*math.Log10(math.Max(float64(a), 1))/logMax }
	yr := func(v float64) float64 { return H - B - (H-B-T)*v/maxRate }
	yp := func(v float64) float64 { return H - B - (H-B-T)*v/maxP99 }
	for d := 0.0; d <= logMax+1e-9; d++ {
		a := int(math.Pow(10, d))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%d</text>`+"\n", x(a), H-B+16, a)
	}
	for i := 0; i <= 4; i++ {
		v := float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%.0f</text>`+"\n", L-6, yr(v*maxRate)+4, v*maxRate)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="start">%.1f</text>`+"\n", W-R+6, yp(v*maxP99)+4, v*maxP99)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", L, yr(v*maxRate), W-R, yr(v*maxRate))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">simulated agents (log scale)</text>`+"\n", W/2, H-12)
	fmt.Fprintf(&b, `<text x="16" y="%.0f" transform="rotate(-90 16 %.0f)" text-anchor="middle" fill="#1f5fa8">records/s</text>`+"\n", H/2, H/2)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" transform="rotate(90 %.0f %.0f)" text-anchor="middle" fill="#c0392b">p99 ms</text>`+"\n", W-16, H/2, W-16, H/2)
	var rl, pl []string
	for _, p := range pts {
		rl = append(rl, fmt.Sprintf("%.1f,%.1f", x(p.Agents), yr(p.Rate)))
		pl = append(pl, fmt.Sprintf("%.1f,%.1f", x(p.Agents), yp(p.P99ms)))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#1f5fa8" stroke-width="2"/>`+"\n", strings.Join(rl, " "))
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>`+"\n", strings.Join(pl, " "))
	for _, p := range pts {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#1f5fa8"/><circle cx="%.1f" cy="%.1f" r="3" fill="#c0392b"/>`+"\n",
			x(p.Agents), yr(p.Rate), x(p.Agents), yp(p.P99ms))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
