-- The count history in blocks of 64 positions (projection version 11): one row per key
-- and block, holding the key's count when the block began and one bit per position of
-- the block that moved it up (`ups`) or down (`downs`), bit i for position 64 * block + i
-- (the u64 masks stored in bigint's bits). A row per key per event was a quarter of the
-- rows a batch wrote. The rows are projections: the rebuild that version 11 starts with
-- fills the new table from the log.
DROP TABLE count_history;
CREATE TABLE count_blocks (
    key   bytea,
    block bigint,
    start bigint NOT NULL,
    ups   bigint NOT NULL,
    downs bigint NOT NULL,
    PRIMARY KEY (key, block)
);
