//! Failed sign-ins slowed, then locked out, per username and per client
//! address, in memory and bounded in size.
//!
//! Why memory is enough: the throttle only has to outlast an attacker, who
//! cannot restart the server; a restart (rare, by an administrator) forgets
//! the counts, which costs an attacker's budget at most one window. Keeping
//! them on disk would turn every failed guess into an fsync, so a flood of
//! guesses would become a flood of disk writes. Each map holds at most
//! `max_tracked` keys and forgets the least recently failed first, so a spray
//! of usernames or addresses costs a fixed amount of memory (about 2 MB at the
//! default 10,000 per map).

use crate::error::ApiError;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures a key may have before it is slowed, and before it is locked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Failures answered at once; each further one waits an increasing delay.
    pub free: u32,
    /// Failures after which the key is locked out for [`SignInPolicy::lockout`].
    pub lock: u32,
}

/// The sign-in throttle's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInPolicy {
    /// Per username (known or not).
    pub per_username: Thresholds,
    /// Per client address (an IPv6 address counts by its /64): higher, since
    /// a whole office may share one address.
    pub per_address: Thresholds,
    /// The first delay after the free failures; it doubles with each further failure.
    pub first_delay: Duration,
    /// How long a lockout lasts; also the longest delay.
    pub lockout: Duration,
    /// A key's failures are forgotten once it has had none for this long.
    /// Longer than the lockout: after a lockout ends, the next failure locks
    /// again at once.
    pub window: Duration,
    /// Keys tracked per map at most; the least recently failed are forgotten first.
    pub max_tracked: usize,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        Self {
            per_username: Thresholds { free: 5, lock: 10 },
            per_address: Thresholds { free: 30, lock: 100 },
            first_delay: Duration::from_secs(1),
            lockout: Duration::from_secs(15 * 60),
            window: Duration::from_secs(60 * 60),
            max_tracked: 10_000,
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    match raw.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(variable = name, value = %raw, "not a whole number; using the default");
            None
        }
    }
}

fn env_thresholds(name: &str, default: Thresholds) -> Thresholds {
    let Ok(raw) = std::env::var(name) else { return default };
    let parsed = raw.split_once(',').and_then(|(f, l)| Some((f.trim().parse().ok()?, l.trim().parse().ok()?)));
    match parsed {
        Some((free, lock)) if free <= lock && lock > 0 => Thresholds { free, lock },
        _ => {
            tracing::warn!(variable = name, value = %raw, "expected FREE,LOCK with FREE <= LOCK; using the default");
            default
        }
    }
}

impl SignInPolicy {
    /// The defaults, changed by `GRIDSYNC_SIGNIN_USER_LIMITS` and
    /// `GRIDSYNC_SIGNIN_ADDR_LIMITS` (`FREE,LOCK`), `GRIDSYNC_SIGNIN_DELAY_MS`,
    /// `GRIDSYNC_SIGNIN_LOCKOUT_S`, `GRIDSYNC_SIGNIN_WINDOW_S` and
    /// `GRIDSYNC_SIGNIN_MAX_TRACKED` where set.
    pub fn from_env() -> Self {
        let d = Self::default();
        Self {
            per_username: env_thresholds("GRIDSYNC_SIGNIN_USER_LIMITS", d.per_username),
            per_address: env_thresholds("GRIDSYNC_SIGNIN_ADDR_LIMITS", d.per_address),
            first_delay: env_u64("GRIDSYNC_SIGNIN_DELAY_MS").map_or(d.first_delay, Duration::from_millis),
            lockout: env_u64("GRIDSYNC_SIGNIN_LOCKOUT_S").map_or(d.lockout, Duration::from_secs),
            window: env_u64("GRIDSYNC_SIGNIN_WINDOW_S").map_or(d.window, Duration::from_secs),
            max_tracked: env_u64("GRIDSYNC_SIGNIN_MAX_TRACKED").map_or(d.max_tracked, |n| n.max(1) as usize),
        }
    }

    /// How long a key that has just failed for the `failures`th time must wait.
    fn wait_after(&self, t: Thresholds, failures: u32) -> Option<Duration> {
        if failures >= t.lock {
            return Some(self.lockout);
        }
        let extra = failures.checked_sub(t.free)?;
        let delay = self.first_delay.saturating_mul(1u32 << extra.min(20));
        Some(delay.min(self.lockout))
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
    /// Which password the failures were against (a fingerprint of its stored
    /// hash; 0 for addresses and unknown usernames): a new password voids them.
    password: u64,
    /// Position in the age order (for eviction).
    stamp: u64,
}

/// Failures per key, bounded: forgets the least recently failed key when full.
struct Tracker<K> {
    entries: HashMap<K, Entry>,
    by_age: BTreeMap<u64, K>,
    next_stamp: u64,
}

impl<K: Hash + Eq + Clone> Tracker<K> {
    fn new() -> Self {
        Self { entries: HashMap::new(), by_age: BTreeMap::new(), next_stamp: 0 }
    }

    /// Until when `key` must wait, if it must.
    fn blocked(&self, key: &K, now: Instant) -> Option<Instant> {
        self.entries.get(key).and_then(|e| e.blocked_until).filter(|until| *until > now)
    }

    /// Counts a failure; returns the new count and until when the key now waits.
    fn fail(
        &mut self,
        key: K,
        now: Instant,
        policy: &SignInPolicy,
        t: Thresholds,
        password: u64,
    ) -> (u32, Option<Instant>) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let entry = match self.entries.get_mut(&key) {
            Some(e) => {
                self.by_age.remove(&e.stamp);
                if now.duration_since(e.last_failure) > policy.window || e.password != password {
                    e.failures = 0;
                }
                e.password = password;
                e
            }
            None => {
                while self.entries.len() >= policy.max_tracked {
                    let Some((_, oldest)) = self.by_age.pop_first() else { break };
                    self.entries.remove(&oldest);
                }
                self.entries.entry(key.clone()).or_insert(Entry {
                    failures: 0,
                    last_failure: now,
                    blocked_until: None,
                    password,
                    stamp,
                })
            }
        };
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        entry.stamp = stamp;
        entry.blocked_until = policy.wait_after(t, entry.failures).map(|d| now + d);
        let out = (entry.failures, entry.blocked_until);
        self.by_age.insert(stamp, key);
        out
    }

    /// The fingerprint of the password `key`'s failures were against, if tracked.
    fn password(&self, key: &K) -> Option<u64> {
        self.entries.get(key).map(|e| e.password)
    }

    fn forget(&mut self, key: &K) {
        if let Some(e) = self.entries.remove(key) {
            self.by_age.remove(&e.stamp);
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What a failure led to, for the log and the audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Failures counted for the username in its window.
    pub username_failures: u32,
    /// Failures counted for the address in its window (0 without an address).
    pub address_failures: u32,
    /// Set when this failure started a lockout (of the username, the address or both): a sentence for the audit log.
    pub lockout: Option<String>,
}

/// The sign-in throttle of one server.
pub struct SignInThrottle {
    policy: SignInPolicy,
    inner: Mutex<(Tracker<String>, Tracker<IpAddr>)>,
}

/// The key an address counts under: IPv4 as is, IPv6 by its /64 (one
/// subscriber usually holds a whole /64).
fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

/// A fingerprint of a stored password hash (its salt makes every new
/// password's differ), for [`SignInThrottle::password_is`]; 0 for no person.
pub fn password_fingerprint(password_hash: Option<&str>) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let Some(hash) = password_hash else { return 0 };
    let mut h = DefaultHasher::new();
    h.write(hash.as_bytes());
    h.finish().max(1)
}

/// The refusal for a wait of `wait`, in Chinese with the time to wait.
pub fn too_many_attempts(wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let when = if seconds < 60 { format!("{seconds} 秒") } else { format!("{} 分钟", seconds.div_ceil(60)) };
    ApiError::TooManyAttempts {
        message: format!("登录失败次数过多，请 {when}后再试"),
        retry_after_s: u32::try_from(seconds).unwrap_or(u32::MAX),
    }
}

impl SignInThrottle {
    /// A throttle with `policy` and nothing counted.
    pub fn new(policy: SignInPolicy) -> Self {
        Self { policy, inner: Mutex::new((Tracker::new(), Tracker::new())) }
    }

    /// Its policy.
    pub fn policy(&self) -> &SignInPolicy {
        &self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Tracker<String>, Tracker<IpAddr>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses (429, with the time to wait) if the username or the address
    /// must wait; checked before any password is looked at, so a locked-out
    /// attempt is refused even with the right password, and costs no hashing.
    pub fn check(&self, username: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), ApiError> {
        let g = self.lock();
        let user = g.0.blocked(&username.to_string(), now);
        let address = addr.and_then(|a| g.1.blocked(&address_key(a), now));
        match user.into_iter().chain(address).max() {
            Some(until) => Err(too_many_attempts(until - now)),
            None => Ok(()),
        }
    }

    /// The username's password is now the one fingerprinted `password` (see
    /// [`password_fingerprint`]): failures counted against an earlier password
    /// — and the username's lockout — end, so that a password an administrator
    /// reset works at once. The address's failures stay.
    pub fn password_is(&self, username: &str, password: u64) {
        let mut g = self.lock();
        let key = username.to_string();
        if g.0.password(&key).is_some_and(|p| p != password) {
            g.0.forget(&key);
        }
    }

    /// Counts a failed attempt against the username (its current password
    /// fingerprinted `password`, 0 if there is no such person) and the address.
    pub fn failed(&self, username: &str, password: u64, addr: Option<IpAddr>, now: Instant) -> FailureOutcome {
        let policy = &self.policy;
        let mut g = self.lock();
        let (username_failures, _) = g.0.fail(username.to_string(), now, policy, policy.per_username, password);
        let address_failures = match addr {
            Some(a) => g.1.fail(address_key(a), now, policy, policy.per_address, 0).0,
            None => 0,
        };
        let mut locked = Vec::new();
        if username_failures >= policy.per_username.lock {
            locked.push(format!("username {username:?} after {username_failures} failures"));
        }
        if let Some(a) = addr
            && address_failures >= policy.per_address.lock
        {
            locked.push(format!("address {} after {address_failures} failures", address_key(a)));
        }
        let lockout = (!locked.is_empty())
            .then(|| format!("{} locked out for {} s", locked.join(" and "), policy.lockout.as_secs()));
        FailureOutcome { username_failures, address_failures, lockout }
    }

    /// A successful sign-in: the username's failures are forgotten. The
    /// address's are not, so one good account cannot launder guesses at others.
    pub fn succeeded(&self, username: &str) {
        self.lock().0.forget(&username.to_string());
    }

    /// Keys tracked now: (usernames, addresses).
    pub fn tracked(&self) -> (usize, usize) {
        let g = self.lock();
        (g.0.len(), g.1.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SignInPolicy {
        SignInPolicy {
            per_username: Thresholds { free: 2, lock: 4 },
            per_address: Thresholds { free: 5, lock: 8 },
            first_delay: Duration::from_secs(1),
            lockout: Duration::from_secs(60),
            window: Duration::from_secs(600),
            max_tracked: 3,
        }
    }

    #[test]
    fn failures_are_free_then_delayed_doubling_then_locked_out() {
        let t = SignInThrottle::new(policy());
        let now = Instant::now();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        t.failed("a", 0, ip, now);
        t.failed("a", 0, ip, now);
        assert!(t.check("a", ip, now).is_err(), "after the free failures, a delay");
        assert!(t.check("a", ip, now + Duration::from_secs(1)).is_ok(), "one second after the second failure");
        t.failed("a", 0, ip, now + Duration::from_secs(1));
        let err = t.check("a", ip, now + Duration::from_secs(2)).expect_err("two seconds' wait after the third");
        assert_eq!(err.retry_after_s(), Some(1));
        let out = t.failed("a", 0, ip, now + Duration::from_secs(3));
        assert!(out.lockout.is_some(), "the fourth failure locks out");
        let err = t.check("a", ip, now + Duration::from_secs(4)).expect_err("locked");
        assert_eq!(err.retry_after_s(), Some(59));
        assert_eq!(err.to_string(), "登录失败次数过多，请 59 秒后再试");
        let long = too_many_attempts(Duration::from_secs(14 * 60 + 1));
        assert_eq!(long.to_string(), "登录失败次数过多，请 15 分钟后再试");
        assert_eq!(long.retry_after_s(), Some(14 * 60 + 1));
        assert!(t.check("a", ip, now + Duration::from_secs(64)).is_ok(), "the lockout ends");
        let out = t.failed("a", 0, ip, now + Duration::from_secs(64));
        assert!(out.lockout.is_some(), "within the window, the next failure locks again at once");
        t.succeeded("a");
        assert!(t.check("a", ip, now + Duration::from_secs(65)).is_ok(), "success forgets the username");
    }

    #[test]
    fn an_address_is_locked_out_across_usernames() {
        let t = SignInThrottle::new(SignInPolicy { max_tracked: 100, ..policy() });
        let now = Instant::now();
        let ip = Some(IpAddr::from([10, 0, 0, 2]));
        for i in 0..8 {
            t.failed(&format!("u{i}"), 0, ip, now);
        }
        assert!(t.check("someone-new", ip, now).is_err(), "the address waits whatever the username");
        assert!(t.check("someone-new", Some(IpAddr::from([10, 0, 0, 3])), now).is_ok(), "other addresses do not");
    }

    #[test]
    fn a_spray_of_usernames_keeps_the_maps_bounded_forgetting_the_oldest() {
        let t = SignInThrottle::new(policy());
        let now = Instant::now();
        for i in 0..1000u32 {
            let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, i as u16, 0, 0, 0, 0, 1);
            t.failed(&format!("user{i}"), 0, Some(IpAddr::V6(ip)), now);
        }
        assert_eq!(t.tracked(), (3, 3));
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
    }
}
