//! One upstream fetch per key at a time: when a hundred clients of a branch
//! mirror ask for the same new chunk at once, the first fetches it and the
//! others wait for it, then read it from the local store. Blocking (the
//! mirror runs on the blocking pool).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A fetch in progress; waiters block until it ends (either way).
#[derive(Default)]
pub struct Flight {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Flight {
    /// Waits until the fetch ended or `timeout` passed.
    pub fn wait(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            done = self
                .cv
                .wait_timeout(done, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn finish(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }
}

/// The fetches in progress, by key.
pub struct Flights<K> {
    map: Mutex<HashMap<K, Arc<Flight>>>,
}

impl<K> Default for Flights<K> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// Keys this caller must fetch; dropping it ends their flights.
pub struct Claimed<'a, K: Hash + Eq> {
    flights: &'a Flights<K>,
    pub keys: Vec<K>,
    mine: Vec<Arc<Flight>>,
}

impl<K: Hash + Eq> Drop for Claimed<'_, K> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|p| p.into_inner());
        for k in &self.keys {
            map.remove(k);
        }
        drop(map);
        for f in &self.mine {
            f.finish();
        }
    }
}

impl<K: Hash + Eq + Clone> Flights<K> {
    /// Splits `keys` into the ones this caller fetches (claimed now) and
    /// the flights of other callers to wait for.
    pub fn claim(&self, keys: &[K]) -> (Claimed<'_, K>, Vec<Arc<Flight>>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut claimed = Claimed {
            flights: self,
            keys: Vec::new(),
            mine: Vec::new(),
        };
        let mut others = Vec::new();
        for k in keys {
            match map.get(k) {
                Some(f) => others.push(f.clone()),
                None => {
                    let f = Arc::new(Flight::default());
                    map.insert(k.clone(), f.clone());
                    claimed.keys.push(k.clone());
                    claimed.mine.push(f);
                }
            }
        }
        (claimed, others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_caller_waits_for_the_first() {
        let flights: Arc<Flights<u32>> = Arc::default();
        let (mine, others) = flights.claim(&[1, 2]);
        assert_eq!((mine.keys.clone(), others.len()), (vec![1, 2], 0));
        let f2 = flights.clone();
        let waiter = std::thread::spawn(move || {
            let (mine, others) = f2.claim(&[2, 3]);
            assert_eq!(mine.keys, vec![3]);
            let t = Instant::now();
            for o in others {
                o.wait(Duration::from_secs(10));
            }
            t.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(mine);
        let waited = waiter.join().unwrap();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        // Everything ended: a new claim gets all keys.
        assert_eq!(flights.claim(&[1, 2, 3]).0.keys, vec![1, 2, 3]);
    }
}
