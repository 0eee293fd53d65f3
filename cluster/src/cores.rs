//! A node's client ports per shard core (slotd's `shard-port-base`), and
//! how nodes tell each other about them.
//!
//! With the directive on, a slotd node listens on one extra client port per
//! shard core; a connection accepted there lives on that core. CLUSTER
//! SLOTS, CLUSTER SHARDS and MOVED then name, for each slot, the port of
//! the core that holds it, so a client that routes by slot reaches the
//! owning core with no hop between cores. CLUSTER NODES, `nodes.conf` and
//! the bus header keep one address per node.
//!
//! Which core holds a slot is the node's own business (it places slots as
//! they arrive), so each node announces its map in a MODULE message, the
//! bus's one message for data Redis does not know: redis-server hands it to
//! the module registered under [`MODULE_ID`], and there is none, so it
//! ignores it. The payload, big-endian:
//!
//! ```text
//! version (u8, 1) | cores (u16) | port (u16) × cores
//! | runs (u16) | (first slot u16, last slot u16, core u16) × runs
//! ```

use crate::SLOTS;

/// The module ID the map travels under (8 bytes, as Redis copies them).
pub const MODULE_ID: [u8; 8] = *b"slotdcrp";
/// The MODULE message's type byte.
pub const MODULE_KIND: u8 = 0;
const VERSION: u8 = 1;
/// A slot this node does not hold on any core.
pub const NO_CORE: u16 = u16::MAX;

/// One node's ports and slot → core map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorePorts {
    /// Client port of each core.
    pub ports: Vec<u16>,
    /// Per slot: the core holding it, or [`NO_CORE`].
    pub core: Vec<u16>,
}

impl CorePorts {
    /// The client port of the core holding `slot`, if the node holds it.
    pub fn port_of(&self, slot: u16) -> Option<u16> {
        let c = *self.core.get(slot as usize)?;
        self.ports.get(c as usize).copied()
    }

    /// The MODULE payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut runs: Vec<(u16, u16, u16)> = Vec::new();
        for (s, &c) in self.core.iter().enumerate() {
            if c == NO_CORE {
                continue;
            }
            match runs.last_mut() {
                Some((_, last, core)) if *core == c && *last as usize + 1 == s => *last = s as u16,
                _ => runs.push((s as u16, s as u16, c)),
            }
        }
        let mut out = Vec::with_capacity(5 + 2 * self.ports.len() + 6 * runs.len());
        out.push(VERSION);
        out.extend_from_slice(&(self.ports.len() as u16).to_be_bytes());
        for p in &self.ports {
            out.extend_from_slice(&p.to_be_bytes());
        }
        out.extend_from_slice(&(runs.len() as u16).to_be_bytes());
        for (first, last, core) in runs {
            for v in [first, last, core] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out
    }

    /// Reads a MODULE payload; `None` for anything malformed (a wrong
    /// version or length, a slot or core out of range, runs out of order).
    pub fn decode(b: &[u8]) -> Option<CorePorts> {
        let (&version, mut rest) = b.split_first()?;
        if version != VERSION {
            return None;
        }
        let mut word = || -> Option<u16> {
            let (v, tail) = rest.split_first_chunk::<2>()?;
            rest = tail;
            Some(u16::from_be_bytes(*v))
        };
        let cores = word()?;
        let ports = (0..cores).map(|_| word()).collect::<Option<Vec<u16>>>()?;
        if ports.contains(&0) {
            return None;
        }
        let runs = word()?;
        let mut core = vec![NO_CORE; SLOTS];
        let mut next = 0usize;
        for _ in 0..runs {
            let (first, last, c) = (word()? as usize, word()? as usize, word()?);
            if first < next || first > last || last >= SLOTS || c >= cores {
                return None;
            }
            core[first..=last].fill(c);
            next = last + 1;
        }
        rest.is_empty().then_some(CorePorts { ports, core })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed_payloads() {
        let mut core = vec![NO_CORE; SLOTS];
        core[0..100].fill(1);
        core[100..200].fill(0);
        core[5000] = 1;
        core[16383] = 0;
        let map = CorePorts {
            ports: vec![7100, 7101],
            core,
        };
        let bytes = map.encode();
        assert_eq!(bytes.len(), 1 + 2 + 4 + 2 + 4 * 6);
        assert_eq!(CorePorts::decode(&bytes), Some(map.clone()));
        assert_eq!(map.port_of(50), Some(7101));
        assert_eq!(map.port_of(150), Some(7100));
        assert_eq!(map.port_of(300), None);
        // Every truncation, and a byte too many, is refused.
        for n in 0..bytes.len() {
            assert_eq!(CorePorts::decode(&bytes[..n]), None, "{n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(CorePorts::decode(&long), None);
        // A core out of range, a slot out of range, runs out of order.
        let run = |first: u16, last: u16, c: u16| {
            let mut b = vec![VERSION, 0, 1, 0x1b, 0xbc, 0, 1];
            for v in [first, last, c] {
                b.extend_from_slice(&v.to_be_bytes());
            }
            b
        };
        assert!(CorePorts::decode(&run(0, 10, 0)).is_some());
        assert_eq!(CorePorts::decode(&run(0, 10, 1)), None);
        assert_eq!(CorePorts::decode(&run(0, 16384, 0)), None);
        assert_eq!(CorePorts::decode(&run(10, 9, 0)), None);
        let mut zero = run(0, 10, 0);
        zero[3..5].fill(0);
        assert_eq!(CorePorts::decode(&zero), None, "port 0");
        let mut b = vec![9u8];
        b.extend_from_slice(&bytes[1..]);
        assert_eq!(CorePorts::decode(&b), None, "unknown version");
    }
}
