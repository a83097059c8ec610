//! Which threads are using the pool, so that a call splits its rows only over interpreters
//! that no other task is using.
//!
//! A task's thread calls the pool once per batch and, between two calls, decodes its next
//! batch. Counting only the chunks in flight at the instant of a call made a call that came
//! while another task was between batches split over every interpreter; the other task's next
//! call then waited for them, and every split paid extra hand-offs (in the benchmark's integer
//! UDF on 2 cores, 6.5% of the calls split). So a thread counts as using an interpreter while
//! its calls run and for [`GRACE`] after its last one ends.

use std::sync::{Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

/// How long after its last call ends a thread still counts as using an interpreter: longer
/// than a task takes to decode its next batch (~0.1 ms), short next to a batch of most UDFs,
/// since a task that just made its last call keeps an interpreter idle for this long.
pub(super) const GRACE: Duration = Duration::from_millis(1);

/// The threads that called the pool recently.
#[derive(Debug, Default)]
pub(super) struct Callers {
    threads: Mutex<Vec<Caller>>,
}

#[derive(Debug)]
struct Caller {
    thread: ThreadId,
    /// Chunks of this thread's call in flight (0 between calls).
    chunks: usize,
    /// When its last call ended.
    ended: Instant,
}

/// A call's place among the callers, from [`Callers::interpreters_for`] to its end.
pub(super) struct Using<'a> {
    callers: &'a Callers,
    thread: ThreadId,
    chunks: usize,
}

impl Callers {
    fn lock(&self) -> MutexGuard<'_, Vec<Caller>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many of `size` interpreters a call of the current thread may split over (at least
    /// one): those not used by other threads' calls in flight (one per chunk) or by threads
    /// whose last call ended within [`GRACE`] (one each).
    pub(super) fn interpreters_for(&self, size: usize) -> usize {
        let me = thread::current().id();
        let now = Instant::now();
        let mut threads = self.lock();
        threads.retain(|c| c.chunks > 0 || now.duration_since(c.ended) < GRACE);
        let used: usize = threads
            .iter()
            .filter(|c| c.thread != me)
            .map(|c| c.chunks.max(1))
            .sum();
        size.saturating_sub(used).max(1)
    }

    /// Records a call of the current thread in `chunks` chunks until the returned guard drops.
    pub(super) fn begin(&self, chunks: usize) -> Using<'_> {
        let thread = thread::current().id();
        let mut threads = self.lock();
        match threads.iter_mut().find(|c| c.thread == thread) {
            Some(caller) => caller.chunks += chunks,
            None => threads.push(Caller {
                thread,
                chunks,
                ended: Instant::now(),
            }),
        }
        Using {
            callers: self,
            thread,
            chunks,
        }
    }
}

impl Drop for Using<'_> {
    fn drop(&mut self) {
        let mut threads = self.callers.lock();
        if let Some(caller) = threads.iter_mut().find(|c| c.thread == self.thread) {
            caller.chunks -= self.chunks;
            caller.ended = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_threads_count_while_they_call_and_for_a_grace_after() {
        let callers = Callers::default();
        assert_eq!(callers.interpreters_for(2), 2);
        // Another thread's call of 2 chunks leaves one interpreter of 4.
        std::thread::scope(|s| {
            let using = s.spawn(|| callers.begin(2)).join().unwrap();
            assert_eq!(callers.interpreters_for(4), 2);
            assert_eq!(callers.interpreters_for(2), 1);
            drop(using);
        });
        // Between its calls it still holds one...
        assert_eq!(callers.interpreters_for(4), 3);
        // ... until the grace is over.
        std::thread::sleep(GRACE + Duration::from_millis(1));
        assert_eq!(callers.interpreters_for(4), 4);
        // The current thread's own calls never count against it.
        let _mine = callers.begin(3);
        assert_eq!(callers.interpreters_for(4), 4);
    }
}
