package agent

import (
	"sync"
	"time"

	"github.com/onecard-hub/onecard/agent/metrics"
	"github.com/onecard-hub/onecard/terminal/journal"
)

// telemetry is the agent's metrics (served on the admin endpoint's
// /metrics; the names are listed in docs/agent-config.md).
type telemetry struct {
	reg          *metrics.Registry
	readerEvents *metrics.CounterVec
	readerErrors *metrics.CounterVec
	apdu         *metrics.HistogramVec
	apduErrors   *metrics.CounterVec
	ops          *metrics.CounterVec
	opSeconds    *metrics.HistogramVec
	requests     *metrics.CounterVec
	refused      *metrics.CounterVec
	conns        *metrics.GaugeVec
	dropped      *metrics.CounterVec

	mu      sync.Mutex
	jsAt    time.Time
	js      journal.Stats
	jsErr   error
	hubAt   time.Time
	hub     HubStatus
	hubErr  error
	started time.Time
}

func newTelemetry(a *Agent) *telemetry {
	r := metrics.NewRegistry()
	t := &telemetry{reg: r, started: time.Now()}
	r.GaugeFunc("onecard_build_info", "Agent version (always 1).", func() []metrics.Sample {
		return []metrics.Sample{{LabelValues: []string{a.opts.Version}, Value: 1}}
	}, "version")
	r.GaugeFunc("onecard_agent_start_time_seconds", "When the agent started (Unix time).", func() []metrics.Sample {
		return []metrics.Sample{{Value: float64(t.started.Unix())}}
	})
	t.readerEvents = r.Counter("onecard_reader_events_total", "Reader events by kind (reader-added, card-inserted, ...).", "kind")
	t.readerErrors = r.Counter("onecard_reader_errors_total", "Reader backend errors (pcscd down, serial port failing).", "backend")
	t.apdu = r.Histogram("onecard_apdu_duration_seconds", "APDU round trip by slot role (card, psam).", nil, "role")
	t.apduErrors = r.Counter("onecard_apdu_errors_total", "APDUs that failed at the reader (card removed, timeout).", "role")
	t.ops = r.Counter("onecard_operations_total", "Card operations by kind and outcome (ok or the error code).", "kind", "outcome")
	t.opSeconds = r.Histogram("onecard_operation_duration_seconds", "Card operation duration by kind.", nil, "kind")
	t.requests = r.Counter("onecard_kiosk_requests_total", "Kiosk API requests by method and outcome.", "method", "outcome")
	t.refused = r.Counter("onecard_kiosk_refused_total", "Kiosk API connections and requests refused, by reason.", "reason")
	t.conns = r.Gauge("onecard_kiosk_connections", "Open kiosk API connections.")
	t.dropped = r.Counter("onecard_kiosk_events_dropped_total", "Events dropped for pages too slow to read them.")
	t.conns.Set(0)
	t.dropped.Add(0)

	r.GaugeFunc("onecard_journal_records", "Journal records by state.", func() []metrics.Sample {
		js, err := t.journalStats(a)
		if err != nil {
			return nil
		}
		var out []metrics.Sample
		for _, s := range journal.States {
			out = append(out, metrics.Sample{LabelValues: []string{s.String()}, Value: float64(js.Counts[s])})
		}
		return out
	}, "state")
	r.GaugeFunc("onecard_journal_unsent_records", "Records waiting to be sent to the hub (card-done and uncertain).", func() []metrics.Sample {
		js, err := t.journalStats(a)
		if err != nil {
			return nil
		}
		return []metrics.Sample{{Value: float64(js.Unsent)}}
	})
	r.GaugeFunc("onecard_journal_oldest_unsent_age_seconds", "Age of the oldest record not yet sent (0: none).", func() []metrics.Sample {
		js, err := t.journalStats(a)
		if err != nil {
			return nil
		}
		return []metrics.Sample{{Value: js.OldestUnsentAge.Seconds()}}
	})
	r.GaugeFunc("onecard_journal_dead_letters", "Records the hub rejected (dead-letter bucket).", func() []metrics.Sample {
		js, err := t.journalStats(a)
		if err != nil {
			return nil
		}
		return []metrics.Sample{{Value: float64(js.DeadLetters)}}
	})
	r.GaugeFunc("onecard_journal_up", "1 when the journal answers, 0 when it fails.", func() []metrics.Sample {
		_, err := t.journalStats(a)
		v := 1.0
		if err != nil {
			v = 0
		}
		return []metrics.Sample{{Value: v}}
	})
	r.GaugeFunc("onecard_hub_configured", "1 when a hub is configured.", func() []metrics.Sample {
		v := 0.0
		if a.hub != nil {
			v = 1
		}
		return []metrics.Sample{{Value: v}}
	})
	r.GaugeFunc("onecard_hub_connected", "1 while the hub client is connected.", func() []metrics.Sample {
		st, ok := t.hubStatus(a)
		if !ok {
			return nil
		}
		v := 0.0
		if st.Connected {
			v = 1
		}
		return []metrics.Sample{{Value: v}}
	})
	r.GaugeFunc("onecard_hub_waiting_records", "Records not yet acknowledged by the hub, by stage (unsent, sent).", func() []metrics.Sample {
		st, ok := t.hubStatus(a)
		if !ok {
			return nil
		}
		return []metrics.Sample{{LabelValues: []string{"unsent"}, Value: float64(st.Unsent)}, {LabelValues: []string{"sent"}, Value: float64(st.Sent)}}
	}, "stage")
	r.GaugeFunc("onecard_hub_oldest_waiting_age_seconds", "Age of the oldest record the hub has not acknowledged.", func() []metrics.Sample {
		st, ok := t.hubStatus(a)
		if !ok {
			return nil
		}
		return []metrics.Sample{{Value: st.OldestAgeSeconds}}
	})
	return t
}

// journalStats caches the journal's stats for a second, so one scrape
// reads the journal once.
func (t *telemetry) journalStats(a *Agent) (journal.Stats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(t.jsAt) < time.Second {
		return t.js, t.jsErr
	}
	t.js, t.jsErr = a.journal.Stats()
	t.jsAt = time.Now()
	return t.js, t.jsErr
}

func (t *telemetry) hubStatus(a *Agent) (HubStatus, bool) {
	if a.hub == nil {
		return HubStatus{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(t.hubAt) >= time.Second {
		t.hub, t.hubErr = a.hub.Status()
		t.hubAt = time.Now()
	}
	return t.hub, t.hubErr == nil
}
