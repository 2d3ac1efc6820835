-- Which version of the projection code built the projections. A node whose code
-- projects differently rebuilds every projection from the log at start-up and records
-- its version here (in the rebuild's transaction). No row: version 1, or a new ledger.
CREATE TABLE projection_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   integer NOT NULL
);
