//! What the fleet knows of each thing beyond its executions: its registry entry (thing type,
//! attributes, thing groups), its connectivity as fleet indexing reports it, and how its device
//! behaves, which is what makes its executions stuck.
//!
//! Every value is drawn from the seed and the thing's index alone, with streams of their own, so
//! adding them changed no execution's draws; only a thing's behaviour (offline, ignoring, stalled)
//! steers the status its active executions take (see `lifecycle::kind`).

use super::{h3, Draw, Fleet, DAY_MS, MINUTE_MS};

/// How a thing's device treats its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// Online, takes its executions one at a time, reports progress.
    Normal,
    /// Disconnected for days: its executions stay QUEUED, or IN_PROGRESS without an update.
    Offline,
    /// Online, but its agent never picks up a job: its executions stay QUEUED.
    Ignoring,
    /// Online, with its agent stuck on a job without an in-progress timeout: that execution is
    /// IN_PROGRESS without an update for days, and the thing's other active executions wait behind
    /// it, QUEUED.
    Stalled,
}

/// The thing types of the fleet, with the model each is, and the share of things of each (of 100).
const TYPES: [(&str, &str, u64); 3] = [
    ("sensor-v1", "M100", 45),
    ("sensor-v2", "M200", 40),
    ("gateway", "G1", 10),
];
/// Firmware versions, the last the newest.
const FIRMWARE: [&str; 3] = ["1.0.3", "1.2.0", "2.4.1"];
/// The region groups every thing is in one of; some are also in `canary`.
const REGION_GROUPS: [&str; 2] = ["fleet-eu", "fleet-us"];
pub(crate) const CANARY: &str = "canary";
/// The attributes of the things whose updates fail half the time.
pub(super) const BAD_COMBINATION: [(&str, &str); 2] = [("firmware", "1.2.0"), ("model", "M200")];

/// Why a device disconnected, as AWS spells it.
const DISCONNECT_REASONS: [&str; 3] = [
    "MQTT_KEEP_ALIVE_TIMEOUT",
    "CONNECTION_LOST",
    "CLIENT_INITIATED_DISCONNECT",
];

/// A thing's registry entry and connectivity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thing {
    /// `None`: the thing has no thing type (one in twenty).
    pub type_name: Option<&'static str>,
    /// `model` and `firmware`, sorted by name.
    pub attributes: Vec<(&'static str, &'static str)>,
    /// The thing groups it is in, sorted.
    pub groups: Vec<&'static str>,
    pub connected: bool,
    /// When it last connected or disconnected, epoch milliseconds.
    pub connectivity_at_ms: u64,
    /// Why it disconnected, for a disconnected thing.
    pub disconnect_reason: Option<&'static str>,
    pub behaviour: Behaviour,
    /// Whether fleet indexing has indexed it yet (one in a hundred is not: SearchIndex does not
    /// find it, so its connectivity is unknown to an audit).
    pub indexed: bool,
}

impl Fleet {
    /// How thing `i`'s device behaves: 6% offline, 3% ignoring its jobs, 3% stalled on one.
    pub fn behaviour(&self, i: u64) -> Behaviour {
        if h3(self.spec.seed, 0x6F66_666C, i) % 100 < 6 {
            return Behaviour::Offline;
        }
        match h3(self.spec.seed, 0x6265_6876, i) % 100 {
            0..=2 => Behaviour::Ignoring,
            3..=5 => Behaviour::Stalled,
            _ => Behaviour::Normal,
        }
    }

    /// When offline thing `i` comes back online, if it does: half of them, at a time in the five
    /// days after the epoch (from then on it takes its jobs, as a normal device does).
    pub fn reconnects_at(&self, i: u64) -> Option<u64> {
        if self.behaviour(i) != Behaviour::Offline {
            return None;
        }
        let mut d = Draw(h3(self.spec.seed, 0x6261_636B, i));
        (d.range(0, 2) == 0).then(|| self.epoch_ms() + d.range(MINUTE_MS, 5 * DAY_MS))
    }

    /// Thing `i`'s registry entry and connectivity now (an offline thing that came back is
    /// connected since then).
    pub fn thing(&self, i: u64) -> Thing {
        let (mut d, type_name, model, firmware) = self.registry_draws(i);
        let mut groups = vec![REGION_GROUPS[d.range(0, 2) as usize]];
        if d.range(0, 10) == 0 {
            groups.insert(0, CANARY);
        }
        let behaviour = self.behaviour(i);
        let epoch = self.epoch_ms();
        let back = self.reconnects_at(i).filter(|t| *t <= self.now_ms());
        let (connected, at, reason) = if let Some(t) = back {
            (true, t, None)
        } else if behaviour == Behaviour::Offline {
            let reason = DISCONNECT_REASONS[d.range(0, 3) as usize];
            (
                false,
                epoch.saturating_sub(d.range(2 * DAY_MS, 40 * DAY_MS)),
                Some(reason),
            )
        } else {
            (
                true,
                epoch.saturating_sub(d.range(MINUTE_MS, 3 * DAY_MS)),
                None,
            )
        };
        Thing {
            type_name,
            attributes: vec![("firmware", firmware), ("model", model)],
            groups,
            connected,
            connectivity_at_ms: at,
            disconnect_reason: reason,
            behaviour,
            indexed: !h3(self.spec.seed, 0x696E_6478, i).is_multiple_of(100),
        }
    }

    /// Whether thing `i` is of the model and firmware whose updates fail half the time.
    pub(super) fn bad_combination(&self, i: u64) -> bool {
        let (_, _, model, firmware) = self.registry_draws(i);
        [("firmware", firmware), ("model", model)] == BAD_COMBINATION
    }

    /// Thing `i`'s type, model and firmware, and the draw stream the rest of its entry comes from.
    fn registry_draws(&self, i: u64) -> (Draw, Option<&'static str>, &'static str, &'static str) {
        let mut d = Draw(h3(self.spec.seed, 0x7468_696E, i));
        let (type_name, model) = match d.range(0, 100) {
            0..=44 => (Some(TYPES[0].0), TYPES[0].1),
            45..=84 => (Some(TYPES[1].0), TYPES[1].1),
            85..=94 => (Some(TYPES[2].0), TYPES[2].1),
            _ => (None, TYPES[0].1),
        };
        let firmware = FIRMWARE[d.range(0, 3) as usize];
        (d, type_name, model, firmware)
    }

    /// The thing groups of the fleet, sorted.
    pub fn thing_groups(&self) -> [&'static str; 3] {
        [CANARY, REGION_GROUPS[0], REGION_GROUPS[1]]
    }

    pub(crate) fn thing_group_arn(&self, group: &str) -> String {
        format!(
            "arn:aws:iot:{}:{}:thinggroup/{group}",
            self.spec.region,
            super::ACCOUNT_ID
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::fleet::FleetSpec;

    fn fleet(things: u64) -> Fleet {
        Fleet::new(FleetSpec {
            things,
            jobs: 4,
            seed: 7,
            now_ms: 1_764_400_000_000,
            epoch_ms: None,
            changed_share: None,
            region: "us-east-1".into(),
            future_status: 0.0,
            active_share: Some(0.3),
        })
    }

    #[test]
    fn every_behaviour_and_type_occurs_and_is_stable() {
        let f = fleet(2000);
        let mut seen = std::collections::HashMap::new();
        for i in 0..2000 {
            *seen.entry(f.behaviour(i)).or_insert(0) += 1;
            assert_eq!(f.thing(i), f.thing(i));
            let t = f.thing(i);
            assert_eq!(t.connected, t.behaviour != Behaviour::Offline);
            assert_eq!(t.disconnect_reason.is_some(), !t.connected);
        }
        for b in [
            Behaviour::Normal,
            Behaviour::Offline,
            Behaviour::Ignoring,
            Behaviour::Stalled,
        ] {
            assert!(seen.get(&b).copied().unwrap_or(0) > 20, "{b:?}: {seen:?}");
        }
        assert!((0..2000).any(|i| f.thing(i).type_name.is_none()));
    }
}
