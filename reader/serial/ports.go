package serial

import (
	"fmt"
	"strings"

	"go.bug.st/serial/enumerator"
)

// PortInfo describes one serial port.
type PortInfo struct {
	Name         string // device path or COM name
	USB          bool
	VID, PID     string // upper-case hex, USB ports only
	SerialNumber string
	Product      string
}

// ListPorts lists the serial ports the OS knows, with USB VID/PID where
// it reports them (go.bug.st/serial/enumerator, no active USB probing).
// Pseudo-terminals are not listed; open them by path.
//
// Caveat: on Linux the enumeration opens every ttyS*/ttyHS* device to weed
// out placeholders, which resets the line settings of a port in use. Do not
// call ListPorts while a reader on such a port is open; enumerate once at
// start-up (or read /sys/class/tty instead).
func ListPorts() ([]PortInfo, error) {
	list, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, fmt.Errorf("list serial ports: %w", err)
	}
	out := make([]PortInfo, 0, len(list))
	for _, d := range list {
		out = append(out, PortInfo{Name: d.Name, USB: d.IsUSB, VID: strings.ToUpper(d.VID), PID: strings.ToUpper(d.PID),
			SerialNumber: d.SerialNumber, Product: d.Product})
	}
	return out, nil
}
