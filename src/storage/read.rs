//! Reads: get, touch and gat, and the meta protocol's read (`mg`) and
//! marks. A read marks the item fetched and active under the shard lock
//! it already holds.

use super::item;
use super::shard::Shard;
use super::slabs::Ref;
use super::{ItemView, MetaMark, MetaState, MetaUpdate, Miss, Store};

impl Store {
    /// Looks `key` up; on a hit calls `f` with the item.
    pub fn get<R>(
        &self,
        key: &[u8],
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        self.read(key, None, now, f)
    }

    fn read<R>(
        &self,
        key: &[u8],
        touch: Option<u32>,
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        let (h, si) = self.locate(key).ok_or(Miss::NotFound)?;
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let r = sh.lookup(key, h, &v)?;
            sh.mark_read(r, now);
            let c = sh.class_of(r);
            match touch {
                Some(e) => {
                    sh.set_exptime(r, e);
                    sh.lru[c].c.touch_hits += 1;
                    self.revise(sh, r, now);
                }
                None => sh.lru[c].c.get_hits += 1,
            }
            let sh: &Shard = sh;
            match sh.value_inline(r) {
                Some(val) => Ok(f(self.view(sh, r, val))),
                None => {
                    let val = sh.value_vec(r);
                    Ok(f(self.view(sh, r, &val)))
                }
            }
        })
    }

    /// In replicated mode, gives a live item whose state changed in place
    /// (a new expiry) a new version, so the change wins on the peer.
    fn revise(&self, sh: &mut Shard, r: Ref, now: u32) {
        if self.replicated() {
            let (s, dead) = self.next_seq(now);
            sh.set_seq(r, s);
            if dead {
                let b = sh.bits(r);
                sh.set_bits(r, b | item::STALE);
            }
        }
    }

    #[inline]
    fn view<'a>(&self, sh: &'a Shard, r: Ref, value: &'a [u8]) -> ItemView<'a> {
        ItemView {
            key: sh.key(r),
            value,
            flags: sh.flags(r),
            cas: self.cas_of(sh.seq(r)),
            exptime: sh.exptime(r),
        }
    }

    /// Sets a new expiry on a live item and calls `f` with it (gat/gats).
    pub fn get_and_touch<R>(
        &self,
        key: &[u8],
        exptime: u32,
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        self.read(key, Some(exptime), now, f)
    }

    /// Sets a new expiry on a live item.
    pub fn touch(&self, key: &[u8], exptime: u32, now: u32) -> Result<(), Miss> {
        self.get_and_touch(key, exptime, now, |_| ())
    }

    /// Meta read: calls `f` with the live item and its meta state as they
    /// were before this access; `f` returns its result and the changes to
    /// apply, which are made under the same lock.
    pub fn meta_read<R>(
        &self,
        key: &[u8],
        now: u32,
        f: impl FnOnce(ItemView<'_>, MetaState) -> (R, MetaUpdate),
    ) -> Result<R, Miss> {
        self.meta_read_touching(key, now, false, f)
    }

    /// [`Store::meta_read`] for a caller that will set a new expiry
    /// (`mg T`): with versions (a replicated store) the item takes its new
    /// version before `f` sees it, so the CAS `f` reports is the one the
    /// item keeps (as memcached reports the state after `T`).
    pub fn meta_read_touching<R>(
        &self,
        key: &[u8],
        now: u32,
        touching: bool,
        f: impl FnOnce(ItemView<'_>, MetaState) -> (R, MetaUpdate),
    ) -> Result<R, Miss> {
        let (h, si) = self.locate(key).ok_or(Miss::NotFound)?;
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let r = sh.lookup(key, h, &v)?;
            if touching {
                self.revise(sh, r, now);
            }
            let b = sh.bits(r);
            let state = MetaState {
                fetched: b & item::FETCHED != 0,
                last_access: sh.time(r),
                stale: b & item::INVALID != 0,
                win_sent: b & item::WIN_SENT != 0,
                key_binary: b & item::KEY_BINARY != 0,
                class: sh.class_of(r) as u32,
                size: sh.size(r),
            };
            let (out, upd) = {
                let shr: &Shard = sh;
                match shr.value_inline(r) {
                    Some(val) => f(self.view(shr, r, val), state),
                    None => {
                        let val = shr.value_vec(r);
                        f(self.view(shr, r, &val), state)
                    }
                }
            };
            if let Some(e) = upd.exptime {
                sh.set_exptime(r, e);
                if !touching {
                    self.revise(sh, r, now);
                }
            }
            if upd.win {
                let b = sh.bits(r);
                sh.set_bits(r, b | item::WIN_SENT);
            }
            if upd.bump {
                sh.mark_read(r, now);
                let c = sh.class_of(r);
                sh.lru[c].c.get_hits += 1;
            }
            Ok(out)
        })
    }

    /// Sets the meta marks of a live item (after a store that must leave
    /// it stale or with its win token already handed out). False when the
    /// item is gone.
    pub fn meta_mark(&self, key: &[u8], now: u32, mark: MetaMark) -> bool {
        let Some((h, si)) = self.locate(key) else {
            return false;
        };
        let v = self.validity(now);
        self.with_shard(si, |sh| match sh.lookup(key, h, &v) {
            Ok(r) => {
                let mut b = sh.bits(r);
                if mark.stale {
                    b |= item::INVALID;
                }
                if mark.win_sent {
                    b |= item::WIN_SENT;
                }
                if mark.key_binary {
                    b |= item::KEY_BINARY;
                }
                sh.set_bits(r, b);
                if mark.read {
                    sh.mark_read(r, now);
                }
                true
            }
            Err(_) => false,
        })
    }
}
