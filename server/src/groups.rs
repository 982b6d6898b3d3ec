//! Group frames for batched fetches: the plan (`ferry_protocol::group_plan`)
//! says which requested chunks travel together and against which bytes of
//! the client's installed version; this module reads those bytes from the
//! store, compresses, and caches the result.
//!
//! Compression at a high level against a multi-megabyte reference is the
//! expensive part of serving, so it happens once per group of a transition
//! (want, have) and is shared by every client making the same move (a
//! broadcast deployment), and ahead of time when a channel record is
//! published ([`Groups::warm`]). Then a second pass ([`Groups::refine`])
//! encodes the same groups again at a much higher level, one at a time in
//! the background, and replaces every cached frame that came out smaller:
//! the first clients of a deployment are served at once, the many that
//! follow get 9-18% fewer bytes on native code (docs/benchmarks.md).
//! Blocking code: it runs on the blocking pool; warming spreads groups over
//! rayon.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use ferry_protocol::chunk::decode_payload;
use ferry_protocol::frame::{encode_group, FRAME_HEADER_LEN};
use ferry_protocol::group::{compress, GroupHeader, GROUP_HEADER_LEN};
use ferry_protocol::group_plan::{GroupSpec, PlanParams, Transition};
use ferry_protocol::{ChunkId, Envelope, Manifest, ManifestId};
use ferry_store::{parse_value, Backend};

/// Group settings (`ferry serve --group-level`, `--group-cache`).
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// zstd level of group frames; 0 turns groups off.
    pub level: i32,
    /// zstd level of the background pass that re-encodes prepared groups;
    /// at or below `level` turns it off.
    pub refine_level: i32,
    /// Bytes of encoded groups kept in memory.
    pub cache_bytes: usize,
    pub plan: PlanParams,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            level: DEFAULT_GROUP_LEVEL,
            refine_level: DEFAULT_REFINE_LEVEL,
            cache_bytes: 256 << 20,
            plan: PlanParams::default(),
        }
    }
}

/// zstd level of group frames (docs/benchmarks.md: levels 9-12 find the
/// reference's matches; from 13 zstd's optimal parsers are 10x slower for
/// a few percent).
pub const DEFAULT_GROUP_LEVEL: i32 = 11;

/// zstd level of the background pass: 4-8x the CPU of level 11 for 9-18%
/// fewer bytes on native code (numpy, pandas, esbuild; docs/benchmarks.md).
/// Paid once per transition, off the clients' path.
pub const DEFAULT_REFINE_LEVEL: i32 = 19;

/// Transitions kept indexed.
const TRANSITIONS: usize = 16;

type TransitionKey = (ManifestId, Option<ManifestId>);
type GroupKey = (ManifestId, Option<ManifestId>, u32, u32, u32);

/// What to send for a group.
#[derive(Debug)]
pub enum Encoded {
    /// The whole group frame.
    Frame(Bytes),
    /// The stored chunks one by one are no bigger: send those.
    Singles,
}

impl Encoded {
    fn weight(&self) -> usize {
        match self {
            Encoded::Frame(b) => b.len() + 64,
            Encoded::Singles => 64,
        }
    }
}

/// Caches of transitions and encoded groups.
pub struct Groups {
    pub config: GroupConfig,
    transitions: Mutex<VecDeque<(TransitionKey, Arc<Transition>)>>,
    cache: Mutex<FrameCache>,
    /// Groups being encoded now, so concurrent clients wait for one result.
    inflight: Mutex<HashMap<GroupKey, Arc<OnceLock<Arc<Encoded>>>>>,
    /// Held while preparing a transition: one at a time, so publishing
    /// several records does not take every core from the clients.
    warming: Mutex<()>,
    /// Held while refining a transition: one at a time, on one thread.
    refining: Mutex<()>,
    /// The server is shutting down: refining stops after its current group.
    stopping: AtomicBool,
}

#[derive(Default)]
struct FrameCache {
    map: HashMap<GroupKey, Arc<Encoded>>,
    order: VecDeque<GroupKey>,
    bytes: usize,
}

impl Groups {
    pub fn new(config: GroupConfig) -> Groups {
        Groups {
            config,
            transitions: Mutex::new(VecDeque::new()),
            cache: Mutex::new(FrameCache::default()),
            inflight: Mutex::new(HashMap::new()),
            warming: Mutex::new(()),
            refining: Mutex::new(()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Stops background refining (at shutdown): a group being encoded
    /// finishes, no other starts.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Waits for and holds the right to prepare a transition.
    pub fn warming(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.warming)
    }

    pub fn enabled(&self) -> bool {
        self.config.level != 0
    }

    /// The indexed transition from `have` to `want`; `None` when `want` is
    /// not a manifest of this store (a `have` the store lacks is ignored).
    pub fn transition(
        &self,
        store: &dyn Backend,
        want: ManifestId,
        have: Option<ManifestId>,
    ) -> Option<Arc<Transition>> {
        let key = (want, have);
        if let Some(t) = lock(&self.transitions).iter().find(|(k, _)| *k == key) {
            return Some(t.1.clone());
        }
        let want_m = load_manifest(store, &want)?;
        let have_m = have.and_then(|h| load_manifest(store, &h));
        let t = Arc::new(Transition::new(&want_m, have_m.as_ref(), self.config.plan));
        let mut ts = lock(&self.transitions);
        if ts.len() >= TRANSITIONS {
            ts.pop_front();
        }
        ts.push_back((key, t.clone()));
        Some(t)
    }

    /// The encoded form of group `g` of `t`, from the cache or made now
    /// (once, however many clients ask at the same time).
    pub fn encoded(
        &self,
        store: &dyn Backend,
        key: (ManifestId, Option<ManifestId>),
        t: &Transition,
        g: &GroupSpec,
    ) -> Arc<Encoded> {
        let gk: GroupKey = (key.0, key.1, g.file, g.chunk, g.count);
        if let Some(e) = lock(&self.cache).map.get(&gk) {
            return e.clone();
        }
        let cell = lock(&self.inflight).entry(gk).or_default().clone();
        let e = cell
            .get_or_init(|| {
                if let Some(e) = lock(&self.cache).map.get(&gk) {
                    return e.clone();
                }
                let e = Arc::new(self.encode(store, t, g, self.config.level).unwrap_or_else(
                    |err| {
                        tracing::warn!("group of {} chunks not encoded: {err}", g.count);
                        Encoded::Singles
                    },
                ));
                self.remember(gk, e.clone());
                e
            })
            .clone();
        lock(&self.inflight).remove(&gk);
        e
    }

    fn remember(&self, k: GroupKey, e: Arc<Encoded>) {
        let mut c = lock(&self.cache);
        let w = e.weight();
        if w > self.config.cache_bytes {
            return;
        }
        while c.bytes + w > self.config.cache_bytes {
            let Some(old) = c.order.pop_front() else {
                break;
            };
            if let Some(v) = c.map.remove(&old) {
                c.bytes -= v.weight();
            }
        }
        if c.map.insert(k, e).is_none() {
            c.order.push_back(k);
            c.bytes += w;
        }
    }

    /// Puts a re-encoded frame in place of the cached one if that is a
    /// larger frame; returns the two sizes then. A group no longer cached
    /// is left out (clients asking for it get it encoded at the first
    /// level).
    fn replace_if_smaller(&self, k: GroupKey, frame: Bytes) -> Option<(usize, usize)> {
        let mut c = lock(&self.cache);
        let old = match c.map.get(&k).map(|e| &**e) {
            Some(Encoded::Frame(old)) if old.len() > frame.len() => old.len(),
            _ => return None,
        };
        let new = frame.len();
        c.bytes = c.bytes - old + new;
        c.map.insert(k, Arc::new(Encoded::Frame(frame)));
        Some((old, new))
    }

    /// Reads the group's chunks and reference from the store and compresses.
    fn encode(
        &self,
        store: &dyn Backend,
        t: &Transition,
        g: &GroupSpec,
        level: i32,
    ) -> Result<Encoded, String> {
        let chunks = t.group_chunks(g);
        let ids: Vec<ChunkId> = chunks.iter().map(|c| c.0).collect();
        let values = store.get_chunks(&ids).map_err(|e| e.to_string())?;
        let mut raw = Vec::with_capacity(g.raw_len as usize);
        let mut singles = 0u64;
        for (id, v) in ids.iter().zip(values) {
            let v = v.ok_or_else(|| format!("chunk {id} is not in the store"))?;
            let (codec, raw_len, payload) = parse_value(id, &v).map_err(|e| e.to_string())?;
            singles += (FRAME_HEADER_LEN + payload.len()) as u64;
            let c = decode_payload(*id, codec, raw_len, payload).map_err(|e| e.to_string())?;
            raw.extend_from_slice(c.data());
        }
        let reference = match &g.reference {
            Some(r) => read_range(store, t, r)?,
            None => Vec::new(),
        };
        let z = compress(&raw, &reference, level).map_err(|e| e.to_string())?;
        if (FRAME_HEADER_LEN + GROUP_HEADER_LEN + z.len()) as u64 >= singles {
            return Ok(Encoded::Singles);
        }
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + GROUP_HEADER_LEN + z.len());
        let header = GroupHeader {
            count: g.count,
            reference: g.reference,
        };
        encode_group(&mut frame, &ids[0], g.raw_len, &header, &z);
        Ok(Encoded::Frame(Bytes::from(frame)))
    }

    /// Encodes every group a client moving from `have` to `want` would ask
    /// for, so the first clients of a deployment find them ready. Blocking.
    pub fn warm(&self, store: &dyn Backend, want: ManifestId, have: Option<ManifestId>) {
        if !self.enabled() {
            return;
        }
        let Some(t) = self.transition(store, want, have) else {
            return;
        };
        let started = std::time::Instant::now();
        let groups = update_groups(&t);
        use rayon::prelude::*;
        groups.par_iter().for_each(|g| {
            self.encoded(store, (want, have), &t, g);
        });
        tracing::info!(
            "prepared {} groups for {} -> {} in {:.1}s",
            groups.len(),
            have.map_or("(nothing)".into(), |h| h.short()),
            want.short(),
            started.elapsed().as_secs_f64()
        );
    }
}

impl Groups {
    /// Encodes the groups of the move from `have` to `want` again at the
    /// refine level, one after the other on this thread, and puts each in
    /// place of its cached frame if smaller. Call after [`Self::warm`];
    /// blocking, for minutes on a big native release, so one transition at
    /// a time and never on the clients' path.
    pub fn refine(&self, store: &dyn Backend, want: ManifestId, have: Option<ManifestId>) {
        let level = self.config.refine_level;
        if !self.enabled() || level <= self.config.level {
            return;
        }
        let _one_at_a_time = lock(&self.refining);
        let Some(t) = self.transition(store, want, have) else {
            return;
        };
        let started = std::time::Instant::now();
        let (mut n, mut before, mut after) = (0usize, 0usize, 0usize);
        for g in update_groups(&t) {
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let Ok(Encoded::Frame(frame)) = self.encode(store, &t, &g, level) else {
                continue;
            };
            let key = (want, have, g.file, g.chunk, g.count);
            if let Some((old, new)) = self.replace_if_smaller(key, frame) {
                n += 1;
                before += old;
                after += new;
            }
        }
        tracing::info!(
            "refined {n} groups for {} -> {} at level {level} in {:.1}s: {before} -> {after} bytes",
            have.map_or("(nothing)".into(), |h| h.short()),
            want.short(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// The groups of a client's whole update along `t`, in file order.
fn update_groups(t: &Transition) -> Vec<GroupSpec> {
    t.plan(&t.update_ids())
        .into_iter()
        .filter_map(|i| match i {
            ferry_protocol::group_plan::Item::Group(g) => Some(g),
            _ => None,
        })
        .collect()
}

/// Bytes `r` of an old file, from its chunks in the store.
fn read_range(
    store: &dyn Backend,
    t: &Transition,
    r: &ferry_protocol::group::RefRange,
) -> Result<Vec<u8>, String> {
    let parts = t.reference_chunks(r);
    let ids: Vec<ChunkId> = parts.iter().map(|p| p.0).collect();
    let values = store.get_chunks(&ids).map_err(|e| e.to_string())?;
    let (start, end) = (r.offset, r.offset + u64::from(r.len));
    let mut out = Vec::with_capacity(r.len as usize);
    for ((id, _, at), v) in parts.iter().zip(values) {
        let v = v.ok_or_else(|| format!("reference chunk {id} is not in the store"))?;
        let (codec, raw_len, payload) = parse_value(id, &v).map_err(|e| e.to_string())?;
        let c = decode_payload(*id, codec, raw_len, payload).map_err(|e| e.to_string())?;
        let from = start.saturating_sub(*at) as usize;
        let to = ((end - at) as usize).min(c.data().len());
        out.extend_from_slice(&c.data()[from..to]);
    }
    if out.len() != r.len as usize {
        return Err("reference range is not covered by the old file's chunks".into());
    }
    Ok(out)
}

/// A stored manifest, decoded (the signature was checked at publish).
fn load_manifest(store: &dyn Backend, id: &ManifestId) -> Option<Manifest> {
    let env = store.get_manifest(id).ok()??;
    let env = Envelope::decode(&env, env.len()).ok()?;
    Manifest::decode(&env.body).ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refined_frames_replace_only_larger_cached_ones() {
        let groups = Groups::new(GroupConfig::default());
        let m = ManifestId::of(b"a manifest");
        let key: GroupKey = (m, None, 1, 0, 3);
        let frame = |n: usize| Bytes::from(vec![0u8; n]);
        assert_eq!(
            groups.replace_if_smaller(key, frame(10)),
            None,
            "not cached"
        );
        groups.remember(key, Arc::new(Encoded::Frame(frame(100))));
        assert_eq!(
            groups.replace_if_smaller(key, frame(100)),
            None,
            "not smaller"
        );
        assert_eq!(groups.replace_if_smaller(key, frame(60)), Some((100, 60)));
        assert_eq!(groups.replace_if_smaller(key, frame(80)), None);
        let cache = lock(&groups.cache);
        assert_eq!(cache.bytes, 60 + 64, "the weight follows the frame");
        assert_eq!(cache.order.len(), 1);
        drop(cache);
        let singles: GroupKey = (m, None, 2, 0, 3);
        groups.remember(singles, Arc::new(Encoded::Singles));
        assert_eq!(
            groups.replace_if_smaller(singles, frame(1)),
            None,
            "singles stay"
        );
    }
}
