package pgstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/onecard-hub/onecard/hub/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned schema change.
type Migration struct {
	Version int    // 1, 2, 3 ... without gaps
	Name    string // file name without version and extension
	SQL     string
}

// Advisory lock (two-int4 form, a key space apart from the one-bigint
// posting locks) held while migrating: "onec", 1.
const migrateLockClass, migrateLockID = 0x6f6e6563, 1

// ParseMigrationName parses "0001_init.sql" into (1, "init"): four or more
// digits, an underscore, a name of [a-z0-9_], ".sql". Errors: ErrSchema.
func ParseMigrationName(file string) (int, string, error) {
	base, ok := strings.CutSuffix(file, ".sql")
	num, name, ok2 := strings.Cut(base, "_")
	if !ok || !ok2 || len(num) < 4 || len(num) > 9 || name == "" {
		return 0, "", fmt.Errorf("parse migration name %q: %w: want NNNN_name.sql", file, store.ErrSchema)
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, "", fmt.Errorf("parse migration name %q: %w: version not decimal", file, store.ErrSchema)
		}
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return 0, "", fmt.Errorf("parse migration name %q: %w: name not [a-z0-9_]", file, store.ErrSchema)
		}
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 {
		return 0, "", fmt.Errorf("parse migration name %q: %w: version must be >= 1", file, store.ErrSchema)
	}
	return v, name, nil
}

// LoadMigrations reads every *.sql file of dir in fsys; versions must run
// 1..n without gaps or repeats. Errors: ErrSchema, fsys's.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	var out []Migration
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		v, name, err := ParseMigrationName(e.Name())
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("load migrations: %w: version %d where %d was expected", store.ErrSchema, m.Version, i+1)
		}
	}
	return out, nil
}

// Migrations returns the embedded schema migrations.
func Migrations() ([]Migration, error) { return LoadMigrations(migrationFiles, "migrations") }

// Migrate brings the database schema up to date: in one transaction,
// holding a transaction-scoped advisory lock (so hubs starting together
// wait for each other instead of racing), it applies every migration newer
// than the recorded version and records each in schema_migrations.
// Errors: ErrSchema when the database is newer than this program; the
// database's otherwise (nothing is applied then).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	return migrate(ctx, pool, ms)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, ms []Migration) error {
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", int32(migrateLockClass), int32(migrateLockID)); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&have); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if have > len(ms) {
			return fmt.Errorf("migrate: %w: database at version %d, this program knows %d", store.ErrSchema, have, len(ms))
		}
		for _, m := range ms[have:] {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migrate: apply %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("migrate: record %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		return nil
	})
}
