//go:build windows

package agent

import (
	"context"
	"fmt"

	"golang.org/x/sys/windows/svc"
)

// RunAsService runs run under the Windows service control manager when
// the process was started by it (svc.IsWindowsService), and reports
// whether it did. Stop and Shutdown requests cancel run's context; the
// service reports StopPending until run returns, so a card operation in
// flight finishes first (Config.ShutdownTimeout bounds it).
//
// Install (elevated prompt):
//
//	sc.exe create onecard-agent binPath= "C:\Program Files\onecard\onecard.exe agent --config C:\ProgramData\onecard\agent.yaml" start= auto
//	sc.exe start onecard-agent
func RunAsService(name string, run func(ctx context.Context) error) (bool, error) {
	is, err := svc.IsWindowsService()
	if err != nil {
		return false, fmt.Errorf("detect Windows service: %w", err)
	}
	if !is {
		return false, nil
	}
	h := &handler{run: run}
	if err := svc.Run(name, h); err != nil {
		return true, fmt.Errorf("run Windows service %s: %w", name, err)
	}
	return true, h.err
}

type handler struct {
	run func(ctx context.Context) error
	err error
}

// Execute is svc.Handler.
func (h *handler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: accepts}
	for {
		select {
		case err := <-done:
			h.err = err
			status <- svc.Status{State: svc.StopPending}
			if err != nil {
				return true, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
			}
		}
	}
}
