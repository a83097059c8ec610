//! Job ids without a clock thread.
//!
//! Ballista's default job id generator keeps a `ferroid` monotonic clock whose background
//! thread wakes every millisecond for the life of the scheduler: about 3% of a core on a
//! virtual machine, idle or not, and on a one-core executor host that is 3% taken from every
//! job. [`ClockJobIds`] makes ids of the same shape (13 Crockford base-32 characters of a
//! 48-bit millisecond timestamp and a 16-bit sequence, sortable as text) by reading the clock
//! when an id is asked for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ballista_scheduler::scheduler_server::JobIdGenerator;

/// Bits of an id below its millisecond timestamp: up to 65,536 ids per millisecond before
/// the ids run ahead of the clock (they stay unique and increasing either way).
const SEQUENCE_BITS: u32 = 16;

/// Crockford's base-32 alphabet (no I, L, O, U): ids stay readable in logs and paths.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Unique, increasing job ids from the wall clock and a sequence.
///
/// Ids of one generator strictly increase; a scheduler restarted later (by the wall clock)
/// starts above its predecessor's ids, so the shuffle directories that executors keep per
/// job id are never reused.
///
/// ```
/// use ballista_scheduler::scheduler_server::JobIdGenerator;
/// use pickleball_scheduler::job_ids::ClockJobIds;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let ids = ClockJobIds::default();
/// let (a, b) = (ids.next_id().await, ids.next_id().await);
/// assert_eq!(a.len(), 13);
/// assert!(a < b);
/// # });
/// ```
#[derive(Debug, Default)]
pub struct ClockJobIds {
    /// The last id handed out, as a number.
    last: AtomicU64,
}

impl ClockJobIds {
    /// The next id as a number: the current millisecond's first id, or one above the last id
    /// if that is not lower (several ids in one millisecond, or a clock set back).
    fn next_value(&self) -> u64 {
        let floor = now_millis() << SEQUENCE_BITS;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = floor.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

#[async_trait::async_trait]
impl JobIdGenerator for ClockJobIds {
    async fn next_id(&self) -> String {
        encode(self.next_value())
    }
}

/// Milliseconds since the Unix epoch, in the 48 bits an id keeps for them (0 for a clock set
/// before 1970, which the sequence then carries).
fn now_millis() -> u64 {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    (millis as u64) & ((1 << (64 - SEQUENCE_BITS)) - 1)
}

/// `value` as 13 base-32 digits, most significant first (fixed width, so text order is
/// numeric order).
fn encode(value: u64) -> String {
    (0..13)
        .rev()
        .map(|digit| char::from(ALPHABET[(value >> (5 * digit)) as usize & 31]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn text_order_is_numeric_order() {
        assert_eq!(encode(0), "0000000000000");
        assert_eq!(encode(31), "000000000000Z");
        assert_eq!(encode(32), "0000000000010");
        assert_eq!(encode(u64::MAX), "FZZZZZZZZZZZZ");
        let values = [0, 1, 31, 32, 1 << 40, (1 << 40) + 1, u64::MAX - 1, u64::MAX];
        for pair in values.windows(2) {
            assert!(encode(pair[0]) < encode(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn ids_carry_the_current_millisecond() {
        let before = now_millis();
        let value = ClockJobIds::default().next_value();
        let after = now_millis();
        assert!((before..=after).contains(&(value >> SEQUENCE_BITS)));
    }

    #[test]
    fn ids_within_a_millisecond_and_from_many_threads_are_unique_and_increasing() {
        let ids = Arc::new(ClockJobIds::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ids = Arc::clone(&ids);
                std::thread::spawn(move || {
                    let values: Vec<u64> = (0..50_000).map(|_| ids.next_value()).collect();
                    assert!(values.windows(2).all(|w| w[0] < w[1]));
                    values
                })
            })
            .collect();
        let mut all = HashSet::new();
        for thread in threads {
            for value in thread.join().expect("no panic") {
                assert!(all.insert(value), "id {value} handed out twice");
            }
        }
        assert_eq!(all.len(), 200_000);
    }

    #[test]
    fn a_clock_set_back_does_not_repeat_ids() {
        let ids = ClockJobIds::default();
        // As if the last id had been made far in the future (then the clock was set back).
        let ahead = (now_millis() + 3_600_000) << SEQUENCE_BITS;
        ids.last.store(ahead, Ordering::Relaxed);
        assert_eq!(ids.next_value(), ahead + 1);
        assert_eq!(ids.next_value(), ahead + 2);
    }

    #[test]
    fn a_later_generator_starts_above_an_earlier_one() {
        let first = ClockJobIds::default();
        let earlier = first.next_value();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(ClockJobIds::default().next_value() > earlier);
    }
}
