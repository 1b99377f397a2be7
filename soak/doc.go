// Package soak is the system soak and fault campaign of onecard: many
// terminals as separate processes, one or more hub processes, a seeded mix
// of card operations and a seeded schedule of faults, then a reconciliation
// of three independent views of every money movement.
//
// # Processes
//
// The hub is the built "onecard hub" binary (bbolt store, or PostgreSQL
// with two hubs). Each agent is a separate process ([AgentMain], normally
// the soak test binary re-executed in a child mode): its own journal, its
// own virtual cards and PSAM (simcard card files whose state lives beside
// them, so the card survives the process), its readers, the hub client and
// a terminal session. Most agents use in-process readers over the card
// files; with [AgentConfig.PCSCUser] the cards sit behind pcscd (the
// campaign runs pcscd and the vpcd bridges and holds the cards) and the
// agent opens reader/pcsc slots by name; with [AgentConfig.SerialPort] the
// campaign runs the serial reader emulator on a pty and the agent opens it
// with reader/serial and the firmware profile. For these remote readers
// the campaign presents, pulls and tears the cards through the bridge or
// the emulator. The campaign sends the agent one command
// per line on stdin ([Command]) and reads one [Reply] per line; between
// commands the agent's hub client drains its journal. Agents reach the hubs
// through a loopback TCP [Proxy] the campaign controls.
//
// # Faults
//
// On a seeded schedule: SIGKILL of an agent in the middle of an operation
// and of a hub; connection cuts at the proxy; a card pulled during the
// n-th APDU of an operation (reader/virtual Slot.PullDuring, the vpcd
// bridge's PullDuring, or a card the serial emulator loses); a torn
// transaction (the card applies DEBIT or CREDIT, then leaves); wrong PINs;
// a card reported lost on the hub; a full disk: one agent runs under a real
// file size limit (RLIMIT_FSIZE, set with prlimit), so its journal file
// stops growing early in the run and the commit of Prepare fails (EFBIG)
// before any APDU moves money, so the kiosk refuses new transactions; a
// record it already holds may not advance either (a kiosk killed then
// cannot even recover its journal and stays down), until the closing
// frees the disk, settles and drains; pcscd restarts (the vpcd
// bridges redial; an agent that sees reader.ErrServiceDown or
// reader.ErrReaderGone drops its connections and starts a fresh session);
// a PostgreSQL restart in the PostgreSQL variant (two hub processes on one
// database, the agents spread over both). The next system fault is due a
// few operations after the previous one ended, so the schedule never
// builds a backlog, and the injector stops with the agents.
//
// Every wait of the campaign is bounded: a reply, a start, a quit, a
// fault step. A stuck agent is asked for its goroutines (SIGQUIT) and
// killed, and the test fails naming the agent and the step; a stuck fault
// step or a campaign with no progress fails naming it, with the test's own
// goroutines. Agents and hubs die with the campaign (Linux: a parent-death
// signal), so a killed test leaves none behind.
//
// # Reconciliation
//
// [Reconcile] compares, card by card, the card's own purse balances and
// counters (its state file), the agents' journals (opened read-only) and
// the hub's ledger (its postings and card accounts). Every money movement
// must appear exactly once in all three, or be uncertain or dead-lettered
// with a reason; the ledger's card accounts must equal the purses to the
// fen. [Result.Summary] is the one-line verdict:
// "operations N, faults F, lost 0, duplicated 0".
package soak
