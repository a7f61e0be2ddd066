//! The values the store's operations take and return: the view of an
//! item a read hands to its callback, store modes and outcomes, misses,
//! and the meta protocol's per-item state and changes.

/// A read-only view of one live item, valid while the callback runs.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    /// CAS unique (0 when CAS is disabled).
    pub cas: u64,
    /// Absolute expiry, Unix seconds, 0 = never.
    pub exptime: u32,
}

/// How a store request treats an existing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// Store only if the item's CAS unique equals this one.
    Cas(u64),
}

/// Outcome of a store request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored {
        cas: u64,
    },
    NotStored,
    /// `cas` with a different unique.
    Exists,
    /// `cas` on a missing key.
    NotFound,
    /// The item would exceed the item size limit.
    TooLarge,
    /// No memory and evictions are disabled (or nothing can be evicted).
    OutOfMemory,
}

/// Why a lookup found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The item was there but its expiry time had passed.
    Expired,
    /// The item was there but invalidated by `flush_all`.
    Flushed,
}

/// Per-item state the meta protocol reads, as it was before the current
/// access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaState {
    /// Read at least once since stored (`h`).
    pub fetched: bool,
    /// Last access, Unix seconds (`l` reports `now` minus this).
    pub last_access: u32,
    /// Invalidated by `md I` / `ms I` (`X`).
    pub stale: bool,
    /// A win token was already handed out (`Z`).
    pub win_sent: bool,
    /// Stored through a base64 (`b`) key.
    pub key_binary: bool,
    /// Slab class and accounted size (`me`).
    pub class: u32,
    pub size: u64,
}

/// Marks [`Store::meta_mark`](super::Store::meta_mark) sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaMark {
    pub stale: bool,
    pub win_sent: bool,
    pub key_binary: bool,
    /// Count a read (fetched bit, access time), as a vivifying `mg` does.
    pub read: bool,
}

/// What a meta read changes on the item it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaUpdate {
    /// New absolute expiry (`T`).
    pub exptime: Option<u32>,
    /// Hand out the win token: set the win-sent mark.
    pub win: bool,
    /// Count the access (fetched bit, access time, LRU activity); false
    /// for `u` and `me`.
    pub bump: bool,
}

/// Outcome of a meta delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDeleteOutcome {
    Deleted,
    /// Marked stale instead (`md I`).
    Invalidated,
    NotFound,
    /// The compare CAS (`C`) did not match.
    Exists,
}

/// Outcome of incr/decr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    Value { value: u64, cas: u64 },
    NotFound,
    NonNumeric,
    OutOfMemory,
}
