-- The ledger on PostgreSQL: the log, its head, idempotency records and the projections,
-- all written in the append's transaction. Applied once, in order, by `ledger serve
-- --backend postgres` under an advisory lock (several nodes may start together).
-- Append new files; never edit one that has been applied (its checksum is recorded).

-- The log. `body` is the envelope's JSON exactly as hashed; `hash` is its SHA-256.
-- (stream_id, version) is unique: two appends at the same version cannot both commit.
CREATE TABLE events (
    position  bigint PRIMARY KEY,
    stream_id uuid   NOT NULL,
    version   bigint NOT NULL,
    hash      bytea  NOT NULL,
    body      bytea  NOT NULL,
    UNIQUE (stream_id, version)
);

-- The head of the hash chain. Every write transaction locks this row first, so positions
-- are assigned in commit order and a reader never sees a later position before an
-- earlier one commits.
CREATE TABLE head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL,
    hash      bytea   NOT NULL
);
INSERT INTO head (position, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

CREATE TABLE idempotency (
    key    text  PRIMARY KEY,
    record bytea NOT NULL
);

-- Current views (JSON bytes, the same bytes the state hash commits to).
CREATE TABLE instances (id uuid PRIMARY KEY, view bytea NOT NULL);
CREATE TABLE resources (id uuid PRIMARY KEY, view bytea NOT NULL);
CREATE TABLE users     (id uuid PRIMARY KEY, view bytea NOT NULL);
CREATE TABLE short_ids (short_id text PRIMARY KEY, id uuid NOT NULL);

-- Filter indexes: one sorted run of ids per key, and each key's count.
CREATE TABLE index_entries (key bytea, id uuid, PRIMARY KEY (key, id));
CREATE TABLE index_counts  (key bytea PRIMARY KEY, count bigint NOT NULL);

-- History for as-of reads: `id` carried `key` at every position P with
-- from_position <= P < to_position (to_position NULL while it still does).
CREATE TABLE history (
    key           bytea,
    id            uuid,
    from_position bigint,
    to_position   bigint,
    PRIMARY KEY (key, id, from_position)
);
CREATE TABLE count_history (key bytea, position bigint, count bigint NOT NULL, PRIMARY KEY (key, position));
-- Event time (ns since the epoch) -> the last position committed at that time.
CREATE TABLE times        (at_ns bigint PRIMARY KEY, position bigint NOT NULL);
CREATE TABLE creations    (position bigint PRIMARY KEY, id uuid NOT NULL);
CREATE TABLE state_hashes (position bigint PRIMARY KEY, hash bytea NOT NULL);
CREATE TABLE versions     (id uuid, position bigint, view bytea NOT NULL, PRIMARY KEY (id, position));
