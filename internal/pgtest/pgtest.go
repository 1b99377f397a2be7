// Package pgtest runs a real, throw-away PostgreSQL server for tests.
//
// The server binaries are found under /usr/lib/postgresql/<version>/bin
// (the highest version wins; ONECARD_PG_BIN overrides the directory). When
// they are missing the test FAILS with "run make deps": tests that need
// PostgreSQL are never skipped.
//
// initdb refuses to run as root, so as root the data directory is handed
// to the "postgres" system user and initdb and pg_ctl run through
// `runuser -u postgres --`; as any other user they run directly. The
// server listens on a free loopback TCP port and on a Unix socket inside
// its own temporary directory; authentication is "trust" for the
// superuser "postgres". For speed the server runs with fsync=off unless
// Options.Durable (crash tests stop the server, not the machine, so no
// committed data is lost either way).
//
// One shared server per test binary: call [Main] from TestMain and
// [Start] from tests; the server starts on first use and [Main] stops it
// (pg_ctl stop -m fast, then a kill) and removes its directory after the
// tests, whatever their outcome. Servers left behind by a killed test
// binary (a timeout panic skips TestMain's cleanup) are stopped and removed
// by the next [Start] in any test binary. [New] starts a private server
// for fault tests ([Server.Restart] disturbs every client), stopped by the
// test's cleanup.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// dirPrefix names every server directory, so stale ones can be found.
const dirPrefix = "onecard-pgtest-"

// Server is a running PostgreSQL server owned by the test binary.
type Server struct {
	base    string // temporary directory (socket, log, owner file)
	data    string // data directory
	bin     string // directory of initdb, pg_ctl
	port    int
	asUser  string // "postgres" when running as root, else ""
	durable bool
	mu      sync.Mutex
	stopped bool
}

var (
	sharedMu   sync.Mutex
	shared     = map[Options]*Server{} // by options; stopped by Main
	mainActive atomic.Bool
	dbCounter  atomic.Int64
)

// Main runs the tests of a package that uses [Start], then stops the
// shared server (if one was started) and removes its directory. Use it as
// `func TestMain(m *testing.M) { pgtest.Main(m) }` (after any setup). It
// calls os.Exit.
func Main(m *testing.M) {
	mainActive.Store(true)
	code := m.Run()
	sharedMu.Lock()
	for _, s := range shared {
		if err := s.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	sharedMu.Unlock()
	os.Exit(code)
}

// Start returns the test binary's shared server, starting it on first use.
// Without [Main] in TestMain the server is stopped by t's cleanup instead
// (and later callers start another one). It fails the test when PostgreSQL
// is not installed ("run make deps") or does not start.
func Start(t testing.TB) *Server { t.Helper(); return StartWith(t, Options{}) }

// StartWith is Start with options: one shared server per distinct
// Options value.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	if !mainActive.Load() {
		return NewWith(t, o)
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if s := shared[o]; s != nil {
		return s
	}
	s, err := start(o)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	shared[o] = s
	return s
}

// Options configure a server ([StartWith], [NewWith]).
type Options struct {
	// Durable keeps fsync on (the default turns it off for speed): for
	// benchmarks whose figures should include the cost of durability.
	Durable bool
}

// New starts a private server that t's cleanup stops and removes. Use it
// for tests that stop or restart the server.
func New(t testing.TB) *Server { t.Helper(); return NewWith(t, Options{}) }

// NewWith is New with options.
func NewWith(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := start(o)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// Port returns the server's loopback TCP port.
func (s *Server) Port() int { return s.port }

// DSN returns a connection string for database db as the superuser.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// CreateDB creates a fresh, empty database and returns its DSN; t's
// cleanup drops it (closing any connection left open).
func (s *Server) CreateDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if s.isStopped() {
			return
		}
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return s.DSN(name)
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func (s *Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// Restart stops the server the way a crash would (pg_ctl stop -m
// immediate: no checkpoint, every connection cut) and starts it again,
// waiting until it accepts connections; the server then runs crash
// recovery. Every open connection fails afterwards.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.pgctl("stop", "-m", "immediate", "-w"); err != nil {
		t.Fatalf("pgtest: immediate stop: %v", err)
	}
	if err := s.pgctl(s.startArgs()...); err != nil {
		t.Fatalf("pgtest: start after stop: %v", err)
	}
}

func (s *Server) startArgs() []string {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", s.port, s.base)
	if !s.durable {
		opts += " -c fsync=off -c full_page_writes=off"
	}
	return []string{"start", "-w", "-t", "60", "-l", filepath.Join(s.base, "log"), "-o", opts}
}

// binDir finds the server binaries.
func binDir() (string, error) {
	if d := os.Getenv("ONECARD_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("PostgreSQL server binaries not found in ONECARD_PG_BIN=%s: run make deps", d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: run make deps")
	}
	sort.Slice(ok, func(i, j int) bool { return version(ok[i]) < version(ok[j]) })
	return ok[len(ok)-1], nil
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func start(o Options) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	reapStale()
	s := &Server{bin: bin, durable: o.Durable}
	s.base, err = os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	s.data = filepath.Join(s.base, "data")
	if err := os.WriteFile(filepath.Join(s.base, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		s.remove()
		return nil, fmt.Errorf("start server: %w", err)
	}
	if os.Geteuid() == 0 {
		s.asUser = "postgres"
		u, err := user.Lookup("postgres")
		if err != nil {
			s.remove()
			return nil, fmt.Errorf("start server: no postgres system user (run make deps): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.base, uid, gid); err != nil {
			s.remove()
			return nil, fmt.Errorf("start server: %w", err)
		}
		_ = os.Chown(filepath.Join(s.base, "owner"), uid, gid)
	}
	if err := os.Chmod(s.base, 0o700); err != nil {
		s.remove()
		return nil, fmt.Errorf("start server: %w", err)
	}
	if out, err := s.run("initdb", "-D", s.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		s.remove()
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	// A free port can be taken between the probe and the start: retry.
	for attempt := 0; ; attempt++ {
		s.port, err = freePort()
		if err == nil {
			err = s.pgctl(s.startArgs()...)
		}
		if err == nil {
			return s, nil
		}
		if attempt == 4 {
			s.remove()
			return nil, fmt.Errorf("start server: %w", err)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// run runs a server binary, as the postgres user when we are root.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

func (s *Server) pgctl(args ...string) error {
	out, err := s.run("pg_ctl", append([]string{"-D", s.data}, args...)...)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.base, "log"))
		return fmt.Errorf("pg_ctl %s: %w: %s; server log tail: %s", args[0], err, strings.TrimSpace(string(out)), tail(log, 800))
	}
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// stop stops the server (fast, then a kill of the postmaster) and removes
// its directory. It is idempotent.
func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	err := s.pgctl("stop", "-m", "fast", "-w", "-t", "30")
	if err != nil {
		s.kill()
	}
	if rerr := s.remove(); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// kill sends SIGKILL to the postmaster named in postmaster.pid (if any);
// its backends exit when they notice it is gone.
func (s *Server) kill() {
	b, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		return
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *Server) remove() error {
	if err := os.RemoveAll(s.base); err != nil {
		return fmt.Errorf("remove server directory: %w", err)
	}
	return nil
}

// reapStale stops and removes servers whose owning test process is gone.
func reapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	bin, _ := binDir()
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		s := &Server{base: d, data: filepath.Join(d, "data"), bin: bin}
		if os.Geteuid() == 0 {
			s.asUser = "postgres"
		}
		if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
			if s.pgctl("stop", "-m", "immediate", "-w", "-t", "10") != nil {
				s.kill()
			}
		}
		_ = s.remove()
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
