//! Decoded message summaries (envelope, body structure, header block) kept
//! in memory by content: a FETCH of headers, ENVELOPE or BODYSTRUCTURE of a
//! message read recently (by any session: another device of the same user,
//! the same message in another mailbox) skips the store and the decoding.
//! Summaries are keyed by blob id, and a blob's content never changes, so an
//! entry is never stale; the only policy is which ones to keep (bounded by
//! an estimate of their bytes, `summary_cache_mib`). Dovecot's
//! `dovecot.index.cache` plays this part there.
use std::sync::Arc;

use pillarbox_mime::Summary;
use pillarbox_store::BlobId;

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<BlobId, Arc<Summary>> for Weight {
    fn weight(&self, _: &BlobId, summary: &Arc<Summary>) -> u64 {
        // The entry itself and the map's share, on top of the summary.
        summary.heap_size() as u64 + 128
    }
}

pub(crate) struct SummaryCache {
    cache: Option<quick_cache::sync::Cache<BlobId, Arc<Summary>, Weight>>,
}

impl SummaryCache {
    /// A cache of about `bytes` (0: none).
    pub(crate) fn new(bytes: u64) -> SummaryCache {
        SummaryCache {
            cache: (bytes > 0).then(|| {
                // quick_cache sizes its table from the expected item count.
                let items = usize::try_from(bytes / 2048).unwrap_or(usize::MAX).max(16);
                quick_cache::sync::Cache::with_weighter(items, bytes, Weight)
            }),
        }
    }

    pub(crate) fn get(&self, blob: &BlobId) -> Option<Arc<Summary>> {
        self.cache.as_ref()?.get(blob)
    }

    pub(crate) fn insert(&self, blob: BlobId, summary: Arc<Summary>) {
        if let Some(c) = &self.cache {
            c.insert(blob, summary);
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
        let c = SummaryCache::new(1 << 20);
        let (a, b) = (BlobId::of(b"a"), BlobId::of(b"b"));
        c.insert(a, summary("a"));
        assert!(c.get(&a).is_some());
        assert!(c.get(&b).is_none());
        let off = SummaryCache::new(0);
        off.insert(a, summary("a"));
        assert!(off.get(&a).is_none());
    }

    #[test]
    fn stays_within_its_budget() {
        let budget = 64 << 10;
        let c = SummaryCache::new(budget);
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
}
