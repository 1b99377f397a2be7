package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/onecard-hub/onecard/hub/store"
	"github.com/onecard-hub/onecard/hub/store/pgstore"
	"github.com/onecard-hub/onecard/hub/store/storetest"
	"github.com/onecard-hub/onecard/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openDSN(t testing.TB, dsn string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(storetest.Ctx(t), pgstore.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func open(t *testing.T) store.Store {
	return openDSN(t, pgtest.Start(t).CreateDB(t))
}

func TestContract(t *testing.T) { storetest.Run(t, open) }

// TestTwoHubsRace: two stores with separate pools over one database (two
// hub processes) post the same and different records concurrently.
func TestTwoHubsRace(t *testing.T) {
	dsn := pgtest.Start(t).CreateDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	storetest.Race(t, a, b, storetest.RaceOptions{Workers: 6, Cards: 12, PerCard: 16, Batch: 12, Seed: 7})
}

func exec(t *testing.T, dsn, sql string, args ...any) error {
	t.Helper()
	ctx := storetest.Ctx(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// TestUniquenessIsTheDatabases: the constraints refuse a second posting
// of a key or a counter value, and an overdraft, even from plain SQL.
func TestUniquenessIsTheDatabases(t *testing.T) {
	dsn := pgtest.Start(t).CreateDB(t)
	s := openDSN(t, dsn)
	c := storetest.Card(1)
	storetest.MustPost(t, s, storetest.Opening("o", c, 100), storetest.Pay(storetest.TermA, 1, c, 1, 40, "H1"))
	cases := []struct{ name, sql, code string }{
		{"record key", `INSERT INTO postings (terminal_no, terminal_seq, kind, day, party, fund, amount, content, posted_at)
			VALUES ('370100000001', 1, 1, '2026-03-14', '', '', 0, 'x', now())`, "23505"},
		{"reference", `INSERT INTO postings (ref, kind, day, party, fund, amount, content, posted_at)
			VALUES ('o', 18, '2026-03-14', '', '', 0, 'x', now())`, "23505"},
		{"counter", `INSERT INTO card_counters (card_id, counter_type, value, posting_id)
			SELECT card_id, counter_type, counter_value, (SELECT min(id) FROM postings) FROM postings WHERE counter_type IS NOT NULL`, "23505"},
		{"overdraft", `UPDATE accounts SET balance = -1 WHERE id LIKE 'merchant/%'`, "23514"},
		{"two keys", `INSERT INTO postings (terminal_no, terminal_seq, ref, kind, day, party, fund, amount, content, posted_at)
			VALUES ('370100000001', 99, 'r', 1, '2026-03-14', '', '', 0, 'x', now())`, "23514"},
	}
	for _, tc := range cases {
		err := exec(t, dsn, tc.sql)
		if err == nil || !strings.Contains(err.Error(), tc.code) {
			t.Fatalf("%s: %v, want SQLSTATE %s", tc.name, err, tc.code)
		}
	}
	storetest.MustCheck(t, s)
}

func TestCheckFindsTampering(t *testing.T) {
	c := storetest.Card(1)
	cases := []struct{ name, sql, want string }{
		{"balance changed", `UPDATE accounts SET balance = balance + 1 WHERE id LIKE 'card/%'`, "balance differs"},
		{"entry changed", `UPDATE entries SET amount = amount + 1 WHERE account_id LIKE 'merchant/%'`, "does not balance"},
		{"counter dropped", `DELETE FROM card_counters`, "counter not recorded"},
		{"policy flipped", `UPDATE accounts SET allow_negative = true WHERE id LIKE 'merchant/%'`, "policy"},
		{"card policy flipped", `UPDATE accounts SET allow_negative = false WHERE id LIKE 'card/%'`, "policy"},
		{"entries dropped", `DELETE FROM entries WHERE posting_id = (SELECT max(id) FROM postings)`, "without entries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.Start(t).CreateDB(t)
			s := openDSN(t, dsn)
			storetest.MustPost(t, s, storetest.Opening("o", c, 100), storetest.Pay(storetest.TermA, 1, c, 1, 40, "H1"))
			storetest.MustCheck(t, s)
			if err := exec(t, dsn, tc.sql); err != nil {
				t.Fatal(err)
			}
			err := s.Check(storetest.Ctx(t))
			var ie *store.InvariantError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("check: %v, want a problem mentioning %q", err, tc.want)
			}
		})
	}
}

// TestMigrateConcurrently: several hubs start at once on an empty
// database; the advisory lock makes one migrate and the others wait.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.Start(t).CreateDB(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := pgstore.Open(storetest.Ctx(t), pgstore.Options{DSN: dsn})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ms, err := pgstore.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	ctx := storetest.Ctx(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, max int
	if err := conn.QueryRow(ctx, "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || max != len(ms) {
		t.Fatalf("schema_migrations: %d rows up to %d, want %d", n, max, len(ms))
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.Start(t).CreateDB(t)
	openDSN(t, dsn)
	if err := exec(t, dsn, "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')"); err != nil {
		t.Fatal(err)
	}
	if _, err := pgstore.Open(storetest.Ctx(t), pgstore.Options{DSN: dsn}); !errors.Is(err, store.ErrSchema) {
		t.Fatalf("open of a newer schema: %v, want ErrSchema", err)
	}
}

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	cases := []struct {
		name  string
		files fstest.MapFS
		want  []int
	}{
		{"ordered", fstest.MapFS{"m/0002_b.sql": file("B"), "m/0001_a.sql": file("A")}, []int{1, 2}},
		{"gap", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")}, nil},
		{"repeat", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0001_b.sql": file("B")}, nil},
		{"starts at 2", fstest.MapFS{"m/0002_a.sql": file("A")}, nil},
		{"bad name", fstest.MapFS{"m/init.sql": file("A")}, nil},
	}
	for _, tc := range cases {
		ms, err := pgstore.LoadMigrations(tc.files, "m")
		if tc.want == nil {
			if !errors.Is(err, store.ErrSchema) {
				t.Fatalf("%s: %v, want ErrSchema", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, v := range tc.want {
			if ms[i].Version != v {
				t.Fatalf("%s: %+v", tc.name, ms)
			}
		}
	}
	ms, err := pgstore.Migrations()
	if err != nil || len(ms) == 0 || ms[0].Name != "init" || !strings.Contains(ms[0].SQL, "UNIQUE (terminal_no, terminal_seq)") {
		t.Fatalf("embedded migrations: %v %v", ms, err)
	}
}

func TestParseMigrationName(t *testing.T) {
	cases := []struct {
		in   string
		v    int
		name string
		ok   bool
	}{
		{"0001_init.sql", 1, "init", true},
		{"0012_add_index2.sql", 12, "add_index2", true},
		{"1_init.sql", 0, "", false},
		{"0001-init.sql", 0, "", false},
		{"0001_Init.sql", 0, "", false},
		{"0001_init.SQL", 0, "", false},
		{"0000_zero.sql", 0, "", false},
		{"00a1_x.sql", 0, "", false},
		{"0001_.sql", 0, "", false},
	}
	for _, c := range cases {
		v, name, err := pgstore.ParseMigrationName(c.in)
		if c.ok != (err == nil) || v != c.v || name != c.name {
			t.Fatalf("ParseMigrationName(%q) = %d, %q, %v", c.in, v, name, err)
		}
	}
}

func FuzzParseMigrationName(f *testing.F) {
	for _, s := range []string{"0001_init.sql", "0012_add_index2.sql", "1_x.sql", "", "_.sql", "99999999999_x.sql"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, name, err := pgstore.ParseMigrationName(s)
		if err != nil {
			if !errors.Is(err, store.ErrSchema) {
				t.Fatalf("error %v does not wrap ErrSchema", err)
			}
			return
		}
		// A name that parses is the canonical rendering of what it parsed to
		// (up to leading zeros of the version).
		num, _, _ := strings.Cut(s, "_")
		if v < 1 || name == "" || s != num+"_"+name+".sql" || fmt.Sprintf("%0*d", len(num), v) != num {
			t.Fatalf("%q parsed to %d %q", s, v, name)
		}
	})
}

// TestRestartDuringPosting: PostgreSQL stops like a crash (immediate)
// while hubs post concurrently; every failed batch is posted again until
// it goes through. Afterwards every record is posted exactly once.
func TestRestartDuringPosting(t *testing.T) {
	srv := pgtest.New(t)
	dsn := srv.CreateDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	set := storetest.NewRaceSet(storetest.RaceOptions{Cards: 10, PerCard: 20})
	storetest.MustPost(t, a, set.Openings...)
	ctx := storetest.Ctx(t)

	var (
		batches  atomic.Int64
		failures atomic.Int64
		restart  = make(chan struct{})
		wg       sync.WaitGroup
		errs     = make(chan error, 8)
	)
	const workers = 8
	for w := 0; w < workers; w++ {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func(w int, s *pgstore.Store) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			order := append([]*store.Posting(nil), set.Base...)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			for len(order) > 0 {
				n := min(1+rng.IntN(5), len(order))
				for {
					res, err := s.Post(ctx, order[:n])
					if err == nil {
						for i, r := range res {
							if r.Err != nil {
								errs <- fmt.Errorf("%s rejected: %w", order[i].Key, r.Err)
								return
							}
						}
						break
					}
					failures.Add(1)
					if ctx.Err() != nil {
						errs <- err
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				order = order[n:]
				if batches.Add(1) == 40 {
					close(restart)
				}
				// Until the restart has happened, keep each worker busy.
				select {
				case <-restart:
				default:
					time.Sleep(time.Millisecond)
				}
			}
		}(w, s)
	}
	<-restart
	srv.Restart(t)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if failures.Load() == 0 {
		t.Fatal("no posting failed: the restart did not hit the posting")
	}
	for acc, want := range set.Expected() {
		storetest.WantBalance(t, a, acc, want)
	}
	ps, err := a.Postings(ctx, store.Query{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(set.Openings) + len(set.Base); len(ps) != want {
		t.Fatalf("%d postings after the restart, want %d", len(ps), want)
	}
	storetest.MustCheck(t, a)
	t.Logf("%d batch attempts failed across the restart", failures.Load())
}

func TestExistingPool(t *testing.T) {
	dsn := pgtest.Start(t).CreateDB(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := pgstore.Open(storetest.Ctx(t), pgstore.Options{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // leaves the pool open
	if err := pool.Ping(context.Background()); err != nil {
		t.Fatalf("pool closed by the store: %v", err)
	}
	if _, err := pgstore.Open(storetest.Ctx(t), pgstore.Options{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("open without DSN: %v", err)
	}
}

// TestRestartSameStore: after PostgreSQL restarts, the same store (its
// pool full of dead connections) reads and posts without an error: each
// operation that hits a broken connection is retried once on a fresh one.
// A post whose retry follows a lost commit reports Duplicate, never a
// second posting.
func TestRestartSameStore(t *testing.T) {
	c := storetest.Card(1)
	cases := []struct {
		name  string
		never bool // the pool never pings before use (as with connections used within a second)
	}{
		{"pool pings idle connections", false},
		{"pool never pings", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := pgtest.New(t)
			dsn := srv.CreateDB(t)
			ctx := storetest.Ctx(t)
			cfg, err := pgxpool.ParseConfig(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if tc.never {
				cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
			}
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			s, err := pgstore.Open(ctx, pgstore.Options{Pool: pool})
			if err != nil {
				t.Fatal(err)
			}
			storetest.MustPost(t, s, storetest.Opening("o", c, 1000))
			// Several pooled connections, all idle when the server goes.
			conns := make([]*pgxpool.Conn, 4)
			for i := range conns {
				if conns[i], err = pool.Acquire(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for _, cn := range conns {
				cn.Release()
			}
			srv.Restart(t)

			if bal, err := s.Balance(ctx, storetest.CardAccount(c)); err != nil || bal != 1000 {
				t.Fatalf("read after restart: balance %d, %v", bal, err)
			}
			ps, err := s.Postings(ctx, store.Query{})
			if err != nil || len(ps) != 1 {
				t.Fatalf("postings after restart: %d, %v", len(ps), err)
			}
			pay := storetest.Pay(storetest.TermA, 1, c, 1, 40, "H1")
			res, err := s.Post(ctx, []*store.Posting{pay})
			if err != nil || res[0].Outcome != store.Posted {
				t.Fatalf("post after restart: %+v, %v", res, err)
			}
			srv.Restart(t)
			res, err = s.Post(ctx, []*store.Posting{pay})
			if err != nil || res[0].Outcome != store.Duplicate {
				t.Fatalf("post again after a second restart: %+v, %v", res, err)
			}
			if _, err := s.Terminals(ctx); err != nil {
				t.Fatalf("list terminals: %v", err)
			}
			storetest.MustCheck(t, s)
		})
	}
}
