//! Coalesced flushes: many threads need "everything I wrote is on disk"; one
//! flush that *starts* after a caller's request satisfies it, so whoever finds
//! no flush running starts one covering every request made so far and the
//! others wait for it. Under load one fsync serves a whole group of writers.

use std::sync::{Condvar, Mutex, PoisonError};

#[derive(Default)]
pub(crate) struct FlushGroup {
    state: Mutex<FlushState>,
    done: Condvar,
}

#[derive(Default)]
pub(crate) struct FlushState {
    pub(crate) requested: u64,
    pub(crate) completed: u64,
    pub(crate) running: bool,
}

impl FlushGroup {
    /// Returns once a run of `flush` that started after this call has succeeded.
    pub(crate) fn run(&self, flush: impl Fn() -> std::io::Result<()>) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.requested += 1;
        let mine = st.requested;
        loop {
            if st.completed >= mine {
                return Ok(());
            }
            if !st.running {
                st.running = true;
                let target = st.requested;
                drop(st);
                let r = flush();
                st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                st.running = false;
                if r.is_ok() {
                    st.completed = st.completed.max(target);
                }
                self.done.notify_all();
                r?;
                continue;
            }
            st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> (u64, u64, bool) {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (st.requested, st.completed, st.running)
    }
}
