-- Driver claims: every node runs a driver, and a node completes a pending transition
-- only while it holds the claim on (instance, version). A claim is taken over for a newer
-- version or after it expires (its node died), so each transition is carried out once.
CREATE TABLE driver_claims (
    instance_id uuid        PRIMARY KEY,
    version     bigint      NOT NULL,
    node        uuid        NOT NULL,
    expires_at  timestamptz NOT NULL
);
