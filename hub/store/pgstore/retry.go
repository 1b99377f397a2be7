package pgstore

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// brokenConn reports whether err says the connection to the server broke
// (the server restarted, crashed or was shut down, the network dropped):
// an error pgconn marks safe to retry (nothing was sent), a connection
// pgconn closed after an earlier failure (ErrConnClosed), an EOF or reset
// on the socket, a network error that is not a timeout, or a server error
// of class 08 (connection exception) or 57P01..57P03 (shutdown, crash,
// starting up).
func brokenConn(err error) bool {
	if err == nil {
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03":
			return true
		}
		return len(pe.Code) == 5 && pe.Code[:2] == "08"
	}
	if pgconn.Timeout(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && !ne.Timeout()
}

// retryOnce runs op and, when it failed on a broken connection, runs it
// once more on a fresh connection (the pool's idle connections are
// dropped first: they died with the one that failed). unknownOK tells
// whether op may run again when its first run may have committed (op is
// idempotent); otherwise the retry happens only when pgconn says nothing
// was sent, or when op reports (via committing) that it failed before it
// sent COMMIT, so the server rolled the transaction back.
func (s *Store) retryOnce(ctx context.Context, unknownOK bool, op func(committing *bool) error) error {
	var committing bool
	err := op(&committing)
	if err == nil || !brokenConn(err) || ctx.Err() != nil {
		return err
	}
	if committing && !unknownOK && !pgconn.SafeToRetry(err) {
		return err
	}
	s.pool.Reset()
	committing = false
	return op(&committing)
}

// read runs a read-only operation, retrying it once on a broken
// connection.
func (s *Store) read(ctx context.Context, op func() error) error {
	return s.retryOnce(ctx, true, func(*bool) error { return op() })
}

// exec runs a single autocommit statement: retried once on a broken
// connection if idempotent, else only when nothing was sent.
func (s *Store) exec(ctx context.Context, idempotent bool, op func() error) error {
	return s.retryOnce(ctx, idempotent, func(committing *bool) error {
		*committing = true // a single statement commits as it runs
		return op()
	})
}

// inTx runs fn in a transaction and commits, retrying the whole
// transaction once on a broken connection: always when the failure came
// before COMMIT was sent, after that only if idempotent (or nothing was
// sent). fn may therefore run twice.
func (s *Store) inTx(ctx context.Context, opts pgx.TxOptions, idempotent bool, fn func(pgx.Tx) error) error {
	return s.retryOnce(ctx, idempotent, func(committing *bool) error {
		tx, err := s.pool.BeginTx(ctx, opts)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return err
		}
		*committing = true
		return tx.Commit(ctx)
	})
}
