//! Every bound the ledger puts on input and on the work one request may cause, named in
//! one place so that surfaces, validation and the OpenAPI document agree.

/// Request bodies above this size are refused (413) before they are parsed.
pub const BODY_BYTES: usize = 1024 * 1024;

/// Page sizes of lists: from 1 to this many items.
pub const PAGE_MAX: usize = 1000;
/// The page size of instance and catalog lists when none is asked for.
pub const PAGE_DEFAULT: usize = 50;
/// The page size of the event feed when none is asked for.
pub const FEED_DEFAULT: usize = 100;
/// The page size of fleet changes when none is asked for.
pub const CHANGES_DEFAULT: usize = 100;
/// Most events one feed request looks at for a caller who sees few of them.
pub const FEED_MAX_SCAN: usize = 10_000;

/// Display names (instances, resources, zones, security groups), in characters.
pub const NAME_CHARS: usize = 255;
// Free-text bounds count characters, as JSON Schema's `maxLength` does, so the published
// document states exactly what is accepted.
/// Instance descriptions, in characters.
pub const DESCRIPTION_CHARS: usize = 4096;
/// Instance user data, in characters.
pub const USER_DATA_CHARS: usize = 64 * 1024;
/// User data as the OpenStack-era dialects bounded it, in bytes.
pub const USER_DATA_BYTES: usize = 64 * 1024;
/// Tags per instance.
pub const TAGS: usize = 50;
/// A tag or attribute key, in characters.
pub const TAG_KEY_CHARS: usize = 128;
/// A tag or attribute value, in characters.
pub const TAG_VALUE_CHARS: usize = 256;
/// A host name, in bytes (RFC 1123), and one of its labels.
pub const HOSTNAME_BYTES: usize = 253;
pub const HOSTNAME_LABEL_BYTES: usize = 63;
/// An OpenSSH public key, in bytes.
pub const PUBLIC_KEY_BYTES: usize = 16 * 1024;
/// A login name, in bytes.
pub const USERNAME_BYTES: usize = 64;
/// An email address, in bytes.
pub const EMAIL_BYTES: usize = 254;

/// An `Idempotency-Key`, in bytes.
pub const IDEMPOTENCY_KEY_BYTES: usize = 255;
/// A caller's `X-Request-Id` longer than this is replaced by a fresh one.
pub const REQUEST_ID_BYTES: usize = 128;

/// Flavor sizes a flavor may declare.
pub const FLAVOR_VCPUS: (u64, u64) = (1, 1024);
pub const FLAVOR_MEMORY_MB: (u64, u64) = (1, 64 * 1024 * 1024);
pub const FLAVOR_DISK_GB: (u64, u64) = (0, 1024 * 1024);

/// Most instances one sorted, offset-paged listing gathers (the vendors' list styles).
pub const LISTING_MAX: usize = 100_000;

/// Free-form attributes per instance (keys and values bounded like tags).
pub const ATTRIBUTES: usize = 50;

/// Most instances one launch request creates (EC2's default per-request ceiling): a
/// larger `max_count` is capacity the ledger does not have, a larger `min_count` a refusal.
pub const LAUNCH_MAX: usize = 100;

/// Connections: how long a client may take to send a request's head (a slow-loris client
/// is answered 408 and dropped), how long an idle keep-alive connection stays open, how
/// long a closing client gets to read the answer, and how many connections one worker
/// holds at once (beyond, new connections wait in the listen backlog, they are not
/// served at everyone's expense).
pub const CLIENT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);
pub const CLIENT_DISCONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
pub const CONNECTIONS_PER_WORKER: usize = 10_000;

/// Most entries the embedded store's write transaction keeps in each of its caches (key
/// numbers, current counts): a live batch touches a few hundred keys, a rebuild's single
/// transaction every key of the ledger.
pub const PROJECTION_CACHE_ENTRIES: usize = 100_000;

/// How many log positions after the head a new instance's short id is tried at (see
/// `domain::short_id`) before random ones: the creations of one launch (up to
/// [`LAUNCH_MAX`]) are decided before any is appended and take consecutive ones, and an
/// id minted at random long ago holds one only by rare chance.
pub const SHORT_ID_ORDINAL_TRIES: u64 = 2 * LAUNCH_MAX as u64;

/// Most read connections one PostgreSQL node keeps open (snapshots, driver claims), a
/// soft bound (see `store::postgres::pool`). Three nodes with their writers and
/// listeners stay under PostgreSQL's default 100 connections.
pub const POSTGRES_READERS: usize = 24;

/// How many ids of a filter's smallest run one read takes while a list's `total` is
/// counted (the ids of each chunk are then looked up in the other filters' runs): one
/// range per chunk instead of a seek per id, and a bounded buffer whatever the run's size.
pub const TOTAL_CHUNK_IDS: usize = 1024;

/// How long the writer holds a batch of driver completions only, waiting for a client's
/// request to share its commit. A completion is queued the moment the request it
/// completes is answered, so at one connection it took a commit of its own and the next
/// request waited behind it (two commits per create); held this long it rides with that
/// next request. Under load every batch holds client requests and nothing waits.
pub const BACKGROUND_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// The embedded store's journal (`store::redb::journal`) is folded into a durable commit
/// of the file once it holds this much. The commit writes every page the batches since
/// the last one changed, and the writer waits for it, so the p99 under load grows with
/// this: creates at 64 connections (wrk) had 19 ms with every batch durable, 21 ms at
/// 1 MiB and 57 ms at 8 MiB; the lifecycle mix 26 ms, and 44 ms at 1 MiB for 46% more
/// throughput (36 ms and 24% at 256 KiB). The file's hottest pages (each index key's last
/// leaf) are still written once per many batches instead of once per batch. It also bounds
/// what a start after a crash replays (about 1,500 events) and the free pages the file
/// cannot reuse meanwhile.
pub const JOURNAL_CHECKPOINT_BYTES: u64 = 1024 * 1024;

/// ... or by the first batch this long after the last durable commit, so a trickle of
/// writes reaches the file too and a restart after a crash replays little.
pub const JOURNAL_CHECKPOINT_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the writer waits after a commit with nothing to do before it lets the store
/// settle (`EventStore::settle`: the embedded store folds its journal into its file), so a
/// quiet ledger's file holds everything and a restart replays nothing.
pub const WRITER_IDLE: std::time::Duration = std::time::Duration::from_millis(200);
