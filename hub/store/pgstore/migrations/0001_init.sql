-- 0001: the hub's ledger, registry and lists.
--
-- Exactly-once lives in the constraints: one posting per record key
-- (terminal number, terminal sequence) or operator reference, one posting
-- per card counter value, no overdraft of an account that forbids it.

CREATE TABLE postings (
    id            BIGSERIAL PRIMARY KEY,
    terminal_no   TEXT,
    terminal_seq  BIGINT,           -- the uint64 sequence's bit pattern
    ref           TEXT,
    kind          SMALLINT NOT NULL,
    day           DATE NOT NULL,    -- card transaction day (records)
    card_id       BYTEA,            -- 16 bytes; NULL when there is no card
    party         TEXT NOT NULL,    -- merchant or programme
    fund          TEXT NOT NULL,
    amount        BIGINT NOT NULL CHECK (amount >= 0),
    counter_type  SMALLINT,
    counter_value INTEGER,
    content       BYTEA NOT NULL,   -- canonical bytes, compared on a repeat
    posted_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT postings_record_key UNIQUE (terminal_no, terminal_seq),
    CONSTRAINT postings_ref_key UNIQUE (ref),
    CONSTRAINT postings_one_key CHECK (
        (terminal_no IS NOT NULL AND terminal_seq IS NOT NULL AND ref IS NULL) OR
        (terminal_no IS NULL AND terminal_seq IS NULL AND ref IS NOT NULL)),
    CONSTRAINT postings_counter CHECK ((counter_type IS NULL) = (counter_value IS NULL))
);
CREATE INDEX postings_day ON postings (day, id);
CREATE INDEX postings_card ON postings (card_id) WHERE card_id IS NOT NULL;

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    allow_negative BOOLEAN NOT NULL,
    balance        BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT accounts_no_overdraft CHECK (allow_negative OR balance >= 0)
);

CREATE TABLE entries (
    posting_id BIGINT NOT NULL REFERENCES postings (id),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    amount     BIGINT NOT NULL CHECK (amount <> 0),
    ord        SMALLINT NOT NULL,   -- position in the posting
    PRIMARY KEY (posting_id, account_id)
);
CREATE INDEX entries_account ON entries (account_id);

CREATE TABLE card_counters (
    card_id      BYTEA NOT NULL,
    counter_type SMALLINT NOT NULL,
    value        INTEGER NOT NULL,
    posting_id   BIGINT NOT NULL UNIQUE REFERENCES postings (id),
    PRIMARY KEY (card_id, counter_type, value)
);

CREATE TABLE programmes (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    fund       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE terminals (
    terminal_no TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    state       SMALLINT NOT NULL,
    token_hash  BYTEA,
    public_key  BYTEA,
    acked_seq   BIGINT NOT NULL,    -- uint64 bit pattern
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- The lost-card list version: one row, locked by every change so that
-- versions become visible in order.
CREATE TABLE lost_list (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    version   BIGINT NOT NULL
);
INSERT INTO lost_list (version) VALUES (0);

CREATE TABLE lost_cards (
    card_id BYTEA PRIMARY KEY,
    lost    BOOLEAN NOT NULL,
    version BIGINT NOT NULL UNIQUE
);

CREATE TABLE dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    terminal_no  TEXT NOT NULL,
    terminal_seq BIGINT NOT NULL,
    ref          TEXT NOT NULL,
    digest       BYTEA NOT NULL,    -- SHA-256 of content
    content      BYTEA NOT NULL,
    reason       TEXT NOT NULL,
    count        INTEGER NOT NULL,
    first_at     TIMESTAMPTZ NOT NULL,
    last_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (terminal_no, terminal_seq, ref, digest)
);

CREATE TABLE terminal_totals (
    day           DATE NOT NULL,
    terminal_no   TEXT NOT NULL,
    pay_count     BIGINT NOT NULL,
    pay_amount    BIGINT NOT NULL,
    load_count    BIGINT NOT NULL,
    load_amount   BIGINT NOT NULL,
    certify_count BIGINT NOT NULL,
    signed        BYTEA,
    signature     BYTEA,
    received_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (day, terminal_no)
);

CREATE TABLE nonces (
    nonce      BYTEA PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX nonces_expiry ON nonces (expires_at);
