//! Envoy's response flags, as a set: what Istio reports in the
//! `response_flags` label and access logs print, several at once as Envoy
//! does (`UF,URX`: the connection failed, and retries ran out).

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u16);

/// In Envoy's order, which is the order a set prints in.
const NAMES: [(Flags, &str); 12] = [
    (Flags::NO_HEALTHY, "UH"),
    (Flags::TIMEOUT, "UT"),
    (Flags::RESET, "UR"),
    (Flags::CONNECT_FAILURE, "UF"),
    (Flags::OVERFLOW, "UO"),
    (Flags::NO_ROUTE, "NR"),
    (Flags::FAULT_DELAY, "DI"),
    (Flags::FAULT_ABORT, "FI"),
    (Flags::DOWNSTREAM_TERMINATION, "DC"),
    (Flags::RETRY_LIMIT, "URX"),
    (Flags::DOWNSTREAM_PROTOCOL_ERROR, "DPE"),
    (Flags::NO_CLUSTER, "NC"),
];

impl Flags {
    pub const NONE: Flags = Flags(0);
    pub const NO_HEALTHY: Flags = Flags(1);
    pub const TIMEOUT: Flags = Flags(1 << 1);
    pub const RESET: Flags = Flags(1 << 2);
    pub const CONNECT_FAILURE: Flags = Flags(1 << 3);
    pub const OVERFLOW: Flags = Flags(1 << 4);
    pub const NO_ROUTE: Flags = Flags(1 << 5);
    pub const FAULT_DELAY: Flags = Flags(1 << 6);
    pub const FAULT_ABORT: Flags = Flags(1 << 7);
    pub const DOWNSTREAM_TERMINATION: Flags = Flags(1 << 8);
    pub const RETRY_LIMIT: Flags = Flags(1 << 9);
    pub const DOWNSTREAM_PROTOCOL_ERROR: Flags = Flags(1 << 10);
    pub const NO_CLUSTER: Flags = Flags(1 << 11);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `-` for none, the flag for one (no allocation), comma-joined for more.
    pub fn as_str(self) -> Cow<'static, str> {
        if self.is_empty() {
            return Cow::Borrowed("-");
        }
        let mut set = NAMES.iter().filter(|(f, _)| self.contains(*f)).map(|(_, n)| *n);
        if self.0.is_power_of_two() {
            return Cow::Borrowed(set.next().unwrap_or("-"));
        }
        Cow::Owned(set.collect::<Vec<_>>().join(","))
    }
}

impl Flags {
    /// As `as_str`, for metric labels, which are `'static`: a set of more
    /// than one flag is made once and kept (there are at most 4,096 sets,
    /// and only failed requests have more than one flag).
    pub fn as_static(self) -> &'static str {
        match self.as_str() {
            Cow::Borrowed(s) => s,
            Cow::Owned(s) => {
                use std::collections::HashMap;
                static SETS: parking_lot::Mutex<Option<HashMap<u16, &'static str>>> = parking_lot::Mutex::new(None);
                let mut sets = SETS.lock();
                let sets = sets.get_or_insert_with(HashMap::new);
                sets.entry(self.0).or_insert_with(|| Box::leak(s.into_boxed_str()))
            }
        }
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, o: Flags) {
        self.0 |= o.0;
    }
}

impl std::fmt::Display for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_as_envoy_prints_them() {
        assert_eq!(Flags::NONE.as_str(), "-");
        assert_eq!(Flags::CONNECT_FAILURE.as_str(), "UF");
        assert_eq!((Flags::RETRY_LIMIT | Flags::CONNECT_FAILURE).as_str(), "UF,URX");
        assert_eq!((Flags::FAULT_DELAY | Flags::TIMEOUT | Flags::RETRY_LIMIT).to_string(), "UT,DI,URX");
        assert!(matches!(Flags::NO_CLUSTER.as_str(), Cow::Borrowed("NC")), "one flag allocates nothing");
        let set = Flags::RETRY_LIMIT | Flags::RESET;
        assert_eq!(set.as_static(), "UR,URX");
        assert!(std::ptr::eq(set.as_static(), set.as_static()), "a set's text is made once");
    }

    #[test]
    fn every_flag_has_one_name() {
        let mut all = Flags::NONE;
        for (f, _) in NAMES {
            assert!(f.0.is_power_of_two());
            assert!(!all.contains(f), "{f:?} twice");
            all |= f;
        }
    }
}
