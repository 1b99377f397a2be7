package pgtest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return s
}

func TestSharedServerFreshDatabases(t *testing.T) {
	s := Start(t)
	if Start(t) != s {
		t.Fatal("Start returned a second server in one test binary")
	}
	a, b := s.CreateDB(t), s.CreateDB(t)
	if a == b {
		t.Fatalf("CreateDB returned the same database twice: %s", a)
	}
	// A table made in one database is absent from the other.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if got := query(t, b, "SELECT count(*)::text FROM pg_tables WHERE tablename = 'only_in_a'"); got != "0" {
		t.Fatalf("table visible in another database: count %s", got)
	}
	if got := query(t, a, "SHOW server_version_num"); len(got) < 6 {
		t.Fatalf("server_version_num %q", got)
	}
	if got := query(t, a, "SELECT current_user"); got != "postgres" {
		t.Fatalf("current_user %q, want postgres", got)
	}
}

func TestRestartCutsConnectionsAndRecovers(t *testing.T) {
	s := New(t)
	dsn := s.CreateDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a connection opened before the restart still works")
	}
	if got := query(t, dsn, "SELECT x::text FROM kept"); got != "42" {
		t.Fatalf("committed row after crash recovery: %q, want 42", got)
	}
}

func TestStopRemovesDirectoryAndFreesPort(t *testing.T) {
	s, err := start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := os.Stat(s.base); !os.IsNotExist(err) {
		t.Fatalf("directory left behind: %v", err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second); err == nil {
		c.Close()
		t.Fatal("server still listening after stop")
	}
}

func TestReapStaleServer(t *testing.T) {
	s, err := start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.stop() })
	// Pretend the owning test binary died: a pid that cannot be alive.
	if err := os.WriteFile(filepath.Join(s.base, "owner"), []byte("2147483646"), 0o644); err != nil {
		t.Fatal(err)
	}
	reapStale()
	if _, err := os.Stat(s.base); !os.IsNotExist(err) {
		t.Fatalf("stale server directory not removed: %v", err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second); err == nil {
		c.Close()
		t.Fatal("stale server still listening")
	}
}

func TestMissingBinariesSayRunMakeDeps(t *testing.T) {
	t.Setenv("ONECARD_PG_BIN", "")
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(dirs) == 0 {
		t.Fatal("PostgreSQL not installed: run make deps")
	}
	t.Setenv("ONECARD_PG_BIN", filepath.Join(t.TempDir(), "nothing"))
	_, err := start(Options{})
	if err == nil || !strings.Contains(err.Error(), "run make deps") {
		t.Fatalf("start with no binaries: %v, want an error saying run make deps", err)
	}
}

func TestDurableOption(t *testing.T) {
	if got := query(t, Start(t).CreateDB(t), "SHOW fsync"); got != "off" {
		t.Fatalf("shared server fsync = %q, want off", got)
	}
	d := StartWith(t, Options{Durable: true})
	if d == Start(t) || StartWith(t, Options{Durable: true}) != d {
		t.Fatal("one shared server per option set expected")
	}
	if got := query(t, d.CreateDB(t), "SHOW fsync"); got != "on" {
		t.Fatalf("durable server fsync = %q, want on", got)
	}
}
