//! What a FETCH derives from a message's stored bytes, kept in memory by
//! content and shared by all sessions: another device of the same user, or
//! the same message in another mailbox, skips the store.
//!
//! - Decoded summaries (envelope, body structure, header block):
//!   `summary_cache_mib`. Dovecot's `dovecot.index.cache` plays this part
//!   there.
//! - Message bodies, decompressed and checked against their content hash:
//!   `body_cache_mib`. Devices fetch the same new mail one after the other,
//!   and a webmail fetches a message again as its user moves around. (Dovecot
//!   reads its files through the page cache, uncompressed by default.)
//!
//! Entries are keyed by blob id, and a blob's content never changes, so an
//! entry is never stale; the only policy is which ones to keep (bounded by
//! an estimate of their bytes).
use std::sync::Arc;

use pillarbox_mime::Summary;
use pillarbox_store::BlobId;
use prometheus_client::metrics::counter::Counter;

use crate::metrics::{CacheLookup, Metrics};

/// Heap bytes of a cached value, for the budget.
pub(crate) trait HeapSize {
    fn heap_size(&self) -> usize;
}

impl HeapSize for Summary {
    fn heap_size(&self) -> usize {
        Summary::heap_size(self)
    }
}

impl HeapSize for [u8] {
    fn heap_size(&self) -> usize {
        self.len()
    }
}

#[derive(Clone)]
struct Weight;

impl<V: HeapSize + ?Sized> quick_cache::Weighter<BlobId, Arc<V>> for Weight {
    fn weight(&self, _: &BlobId, value: &Arc<V>) -> u64 {
        // The entry itself and the map's share, on top of the value.
        value.heap_size() as u64 + 128
    }
}

pub(crate) struct BlobCache<V: ?Sized> {
    cache: Option<quick_cache::sync::Cache<BlobId, Arc<V>, Weight>>,
    /// Lookups that found their entry, and those that did not (counted
    /// only when there is a cache).
    hits: Counter,
    misses: Counter,
}

impl<V: HeapSize + ?Sized> BlobCache<V> {
    /// A cache of about `bytes` (0: none), for values of about `typical`
    /// bytes (quick_cache sizes its table from the expected item count),
    /// counting its lookups as `name` in `metrics`.
    pub(crate) fn new(
        bytes: u64,
        typical: u64,
        name: &'static str,
        metrics: &Metrics,
    ) -> BlobCache<V> {
        let counter = |result| {
            metrics
                .cache_lookups
                .get_or_create(&CacheLookup {
                    cache: name,
                    result,
                })
                .clone()
        };
        BlobCache {
            cache: (bytes > 0).then(|| {
                let items = usize::try_from(bytes / typical.max(1))
                    .unwrap_or(usize::MAX)
                    .max(16);
                quick_cache::sync::Cache::with_weighter(items, bytes, Weight)
            }),
            hits: counter("hit"),
            misses: counter("miss"),
        }
    }

    pub(crate) fn get(&self, blob: &BlobId) -> Option<Arc<V>> {
        let found = self.cache.as_ref()?.get(blob);
        if found.is_some() {
            self.hits.inc();
        } else {
            self.misses.inc();
        }
        found
    }

    pub(crate) fn insert(&self, blob: BlobId, value: Arc<V>) {
        if let Some(c) = &self.cache {
            c.insert(blob, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(text: &str) -> Arc<Summary> {
        Arc::new(Summary::parse(
            format!("Subject: {text}\r\n\r\n{text}\r\n").as_bytes(),
        ))
    }

    #[test]
    fn keeps_what_fits_and_nothing_when_disabled() {
        let c = BlobCache::new(1 << 20, 2048, "summary", &Metrics::new());
        let (a, b) = (BlobId::of(b"a"), BlobId::of(b"b"));
        c.insert(a, summary("a"));
        assert!(c.get(&a).is_some());
        assert!(c.get(&b).is_none());
        let off = BlobCache::new(0, 2048, "summary", &Metrics::new());
        off.insert(a, summary("a"));
        assert!(off.get(&a).is_none());
    }

    #[test]
    fn stays_within_its_budget() {
        let budget = 64 << 10;
        let c = BlobCache::new(budget, 2048, "summary", &Metrics::new());
        let big = "x".repeat(4000);
        let ids: Vec<BlobId> = (0..100u32).map(|i| BlobId::of(&i.to_le_bytes())).collect();
        for id in &ids {
            c.insert(*id, summary(&big));
        }
        let kept = ids.iter().filter(|id| c.get(id).is_some()).count();
        let each = summary(&big).heap_size() as u64 + 128;
        assert!(kept > 0, "nothing kept");
        assert!(
            kept as u64 * each <= budget,
            "{kept} entries of {each} bytes"
        );
    }

    #[test]
    fn bodies_are_weighed_by_their_length() {
        let budget = 64 << 10;
        let c: BlobCache<[u8]> = BlobCache::new(budget, 8192, "body", &Metrics::new());
        let ids: Vec<BlobId> = (0..100u32).map(|i| BlobId::of(&i.to_le_bytes())).collect();
        for id in &ids {
            c.insert(*id, vec![b'x'; 8000].into());
        }
        let kept = ids.iter().filter(|id| c.get(id).is_some()).count();
        assert!(kept > 0, "nothing kept");
        assert!(kept as u64 * 8128 <= budget, "{kept} bodies of 8000 bytes");
        let got = c.get(ids.iter().find(|id| c.get(id).is_some()).unwrap());
        assert_eq!(got.as_deref(), Some(&[b'x'; 8000][..]));
    }
}
