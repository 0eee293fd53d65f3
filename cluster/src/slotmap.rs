//! What shard cores need of the cluster state to answer clients: who owns
//! each slot and at which address, which slots are migrating or importing,
//! and whether the cluster is up. Built by [`crate::state::Cluster::slot_map`]
//! on the bus core whenever it changes and handed to every shard core as an
//! immutable value (shared behind an `Arc`); shards never lock the bus.
//!
//! The redirection rules are Redis 7.0's `getNodeByQuery` split in two: the
//! checks that need no data ([`SlotMap::route`]: CROSSSLOT, CLUSTERDOWN,
//! MOVED, ASKING on an importing slot) run on the core that serves the
//! connection; those that need to know whether the keys exist (ASK and
//! TRYAGAIN during a migration, [`SlotMap::migration`]) run on the core that
//! owns the keys, atomically with the command.

use crate::{NodeId, SLOTS};

/// No node: an unassigned slot.
const NONE: u16 = u16::MAX;

/// How a slot's owner is reached (`cluster-preferred-endpoint-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointType {
    #[default]
    Ip,
    Hostname,
    UnknownEndpoint,
}

impl EndpointType {
    /// Parses the directive's value.
    pub fn parse(s: &str) -> Option<EndpointType> {
        match s.to_ascii_lowercase().as_str() {
            "ip" => Some(EndpointType::Ip),
            "hostname" => Some(EndpointType::Hostname),
            "unknown-endpoint" => Some(EndpointType::UnknownEndpoint),
            _ => None,
        }
    }
}

/// One node a slot may point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: NodeId,
    pub ip: String,
    pub port: u16,
    pub hostname: String,
}

impl Endpoint {
    /// The address clients are told in MOVED and ASK (Redis's
    /// `clusterNodePreferredEndpoint`): the IP, the hostname (`?` when it
    /// has none) or `?`.
    pub fn preferred(&self, kind: EndpointType) -> &str {
        match kind {
            EndpointType::Ip => &self.ip,
            EndpointType::Hostname if !self.hostname.is_empty() => &self.hostname,
            _ => "?",
        }
    }
}

/// The slot map a shard core routes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    /// `cluster_state:ok`.
    pub ok: bool,
    /// Index of this node in `nodes`.
    pub me: u16,
    pub nodes: Vec<Endpoint>,
    /// Per slot: index of its owner in `nodes`, or `u16::MAX`.
    pub owner: Vec<u16>,
    /// The slots migrating away (this node owns them), with the node each
    /// goes to; sorted by slot. A handful at a time, so a sorted list:
    /// building, comparing and sending a map costs no 16384-entry arrays
    /// beyond `owner`.
    pub migrating: Vec<(u16, u16)>,
    /// The slots being imported, with the node each comes from; sorted by
    /// slot.
    pub importing: Vec<(u16, u16)>,
    /// How MOVED and ASK name a node.
    pub endpoint: EndpointType,
    /// This node's master, when it is a replica (index in `nodes`).
    pub master: Option<u16>,
    /// Per slot, the client port of the owner's shard core that holds it
    /// (`crate::cores`), 0 when the owner announced none; empty when no
    /// owner announced core ports.
    pub core_port: Vec<u16>,
}

/// What [`SlotMap::route`] decides for a command's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it here (keys may still need [`SlotMap::migration`]).
    Serve,
    /// Refuse with this error line (without the leading `-`).
    Refuse(String),
}

/// What [`SlotMap::migration`] decides once the owner core knows which keys
/// exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    /// Run the command.
    Run,
    /// Refuse with this error line (`ASK …` or `TRYAGAIN …`).
    Refuse(String),
}

/// The error of a command whose keys are in several slots.
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
/// The error of a multi-key command over a slot being moved.
pub const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";
/// The error of a command for a slot nobody serves.
pub const DOWN_UNBOUND: &str = "CLUSTERDOWN Hash slot not served";
/// The error of a command while the cluster is down.
pub const DOWN_STATE: &str = "CLUSTERDOWN The cluster is down";
/// The error of a write while the cluster is down and reads are allowed.
pub const DOWN_RO_STATE: &str = "CLUSTERDOWN The cluster is down and only accepts read commands";

impl SlotMap {
    /// A map for a node that knows only itself (`me`), owning nothing:
    /// every keyed command is refused with `CLUSTERDOWN`.
    pub fn empty(me: Endpoint) -> SlotMap {
        SlotMap {
            ok: false,
            me: 0,
            nodes: vec![me],
            owner: vec![NONE; SLOTS],
            migrating: Vec::new(),
            importing: Vec::new(),
            endpoint: EndpointType::Ip,
            master: None,
            core_port: Vec::new(),
        }
    }

    /// Whether this node serves `slot`: owns it, or imports it.
    pub fn served(&self, slot: u16) -> bool {
        let s = slot as usize % SLOTS;
        self.owner[s] == self.me || self.importing_from(slot).is_some()
    }

    /// Whether this node owns `slot`.
    pub fn mine(&self, slot: u16) -> bool {
        self.owner.get(slot as usize) == Some(&self.me)
    }

    /// Whether `slot` is migrating away from this node or being imported
    /// into it (the owner core then checks [`SlotMap::migration`]).
    pub fn moving(&self, slot: u16) -> bool {
        self.migrating_to(slot).is_some() || self.importing_from(slot).is_some()
    }

    /// Whether any slot is migrating or importing.
    pub fn any_moving(&self) -> bool {
        !self.migrating.is_empty() || !self.importing.is_empty()
    }

    /// The node `slot` migrates to, if it does.
    pub fn migrating_to(&self, slot: u16) -> Option<u16> {
        find(&self.migrating, slot)
    }

    /// The node `slot` is imported from, if it is.
    pub fn importing_from(&self, slot: u16) -> Option<u16> {
        find(&self.importing, slot)
    }

    /// Per slot, whether this node serves it ([`SlotMap::served`] for every
    /// slot at once).
    /// Every slot whose keys this node holds: its own and those it is
    /// importing, or, on a replica, its master's (where a core places
    /// them).
    pub fn served_all(&self) -> Vec<bool> {
        let holder = self.master.unwrap_or(self.me);
        let mut served: Vec<bool> = self.owner.iter().map(|&o| o == holder).collect();
        for &(slot, _) in &self.importing {
            served[slot as usize % SLOTS] = true;
        }
        served
    }

    fn addr(&self, node: u16) -> String {
        let n = &self.nodes[node as usize];
        format!("{}:{}", n.preferred(self.endpoint), n.port)
    }

    /// The redirection a client blocked on a key of `slot` gets when this
    /// node no longer serves it (Redis's
    /// `clusterRedirectBlockedClientIfNeeded`): the cluster down, the slot
    /// unbound, or MOVED to its owner, unless it is imported here or this
    /// node is a replica of its owner (a READONLY client's read).
    pub fn blocked_redirect(&self, slot: u16) -> Option<String> {
        let owner = self.owner[slot as usize % SLOTS];
        if !self.ok {
            Some(DOWN_STATE.into())
        } else if owner == self.me
            || self.importing_from(slot).is_some()
            || (owner != NONE && self.master == Some(owner))
        {
            None
        } else if owner == NONE {
            Some(DOWN_UNBOUND.into())
        } else {
            Some(self.moved(slot))
        }
    }

    /// The MOVED error for `slot`, or CLUSTERDOWN if nobody owns it.
    pub fn moved(&self, slot: u16) -> String {
        match self.owner[slot as usize % SLOTS] {
            NONE => DOWN_UNBOUND.to_string(),
            n => match self.core_port.get(slot as usize % SLOTS) {
                Some(&port) if port != 0 => {
                    let node = &self.nodes[n as usize];
                    format!("MOVED {slot} {}:{port}", node.preferred(self.endpoint))
                }
                _ => format!("MOVED {slot} {}", self.addr(n)),
            },
        }
    }

    /// The checks Redis makes before running a command with keys, that
    /// need no data: `slot` is the keys' one slot (the caller answers
    /// CROSSSLOT when they have several), `write` whether the command may
    /// write, `asking` whether the client sent ASKING (or the command is
    /// RESTORE-ASKING), `reads_when_down` is
    /// `cluster-allow-reads-when-down`.
    /// `readonly`: the client sent READONLY, so a replica serves its
    /// master's slots to commands that only read (`getNodeByQuery`).
    pub fn route(
        &self,
        slot: u16,
        write: bool,
        asking: bool,
        readonly: bool,
        reads_when_down: bool,
    ) -> Verdict {
        let s = slot as usize % SLOTS;
        let owner = self.owner[s];
        if owner == NONE {
            return Verdict::Refuse(DOWN_UNBOUND.into());
        }
        if !self.ok {
            if !reads_when_down {
                return Verdict::Refuse(DOWN_STATE.into());
            }
            if write {
                return Verdict::Refuse(DOWN_RO_STATE.into());
            }
        }
        if owner == self.me || (asking && self.importing_from(slot).is_some()) {
            return Verdict::Serve;
        }
        if readonly && !write && self.master == Some(owner) {
            return Verdict::Serve;
        }
        Verdict::Refuse(self.moved(slot))
    }

    /// The checks of a migration, on the core that owns the keys: `keys` is
    /// how many different keys the command names in `slot`, `missing` how
    /// many of them do not exist. A slot migrating away sends a command whose keys are
    /// all missing to the target with ASK; one with some missing and some
    /// present gets TRYAGAIN. A slot being imported (the client sent
    /// ASKING) runs the command unless it names several keys and some are
    /// missing (TRYAGAIN).
    pub fn migration(&self, slot: u16, keys: usize, missing: usize) -> Migration {
        let s = slot as usize % SLOTS;
        if missing == 0 {
            return Migration::Run;
        }
        if let (true, Some(to)) = (self.owner[s] == self.me, self.migrating_to(slot)) {
            if missing == keys {
                return Migration::Refuse(format!("ASK {slot} {}", self.addr(to)));
            }
            return Migration::Refuse(TRYAGAIN.into());
        }
        if self.importing_from(slot).is_some() && keys > 1 {
            return Migration::Refuse(TRYAGAIN.into());
        }
        Migration::Run
    }
}

/// The node of `slot` in a list sorted by slot.
fn find(list: &[(u16, u16)], slot: u16) -> Option<u16> {
    if list.is_empty() {
        return None;
    }
    list.binary_search_by_key(&slot, |&(s, _)| s)
        .ok()
        .map(|i| list[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(c: u8, port: u16) -> Endpoint {
        Endpoint {
            id: NodeId([c; 40]),
            ip: "127.0.0.1".into(),
            port,
            hostname: String::new(),
        }
    }

    fn map() -> SlotMap {
        let mut m = SlotMap::empty(ep(b'a', 7000));
        m.nodes.push(ep(b'b', 7001));
        m.ok = true;
        for s in 0..8192 {
            m.owner[s] = 0;
        }
        for s in 8192..16383 {
            m.owner[s] = 1;
        }
        m.migrating.push((100, 1));
        m.importing.push((9000, 1));
        m
    }

    #[test]
    fn routes_as_redis() {
        let m = map();
        assert_eq!(m.route(5, true, false, false, false), Verdict::Serve);
        assert_eq!(
            m.route(9001, false, false, false, false),
            Verdict::Refuse("MOVED 9001 127.0.0.1:7001".into())
        );
        assert_eq!(m.route(9000, true, true, false, false), Verdict::Serve);
        assert_eq!(
            m.route(9000, true, false, false, false),
            Verdict::Refuse("MOVED 9000 127.0.0.1:7001".into())
        );
        assert_eq!(
            m.route(16383, false, false, false, false),
            Verdict::Refuse(DOWN_UNBOUND.into())
        );
        let mut down = m.clone();
        down.ok = false;
        assert_eq!(
            down.route(5, false, false, false, false),
            Verdict::Refuse(DOWN_STATE.into())
        );
        assert_eq!(down.route(5, false, false, false, true), Verdict::Serve);
        assert_eq!(
            down.route(5, true, false, false, true),
            Verdict::Refuse(DOWN_RO_STATE.into())
        );
        // A replica serves its master's slots to READONLY reads only.
        let mut replica = m.clone();
        replica.master = Some(1);
        assert_eq!(
            replica.route(9001, false, false, true, false),
            Verdict::Serve
        );
        assert_eq!(
            replica.route(9001, true, false, true, false),
            Verdict::Refuse("MOVED 9001 127.0.0.1:7001".into())
        );
        assert_eq!(
            replica.route(9001, false, false, false, false),
            Verdict::Refuse("MOVED 9001 127.0.0.1:7001".into())
        );
        assert!(replica.served_all()[9001] && !replica.served_all()[5]);
    }

    #[test]
    fn migration_asks_or_retries() {
        let m = map();
        assert_eq!(m.migration(100, 1, 0), Migration::Run);
        assert_eq!(
            m.migration(100, 1, 1),
            Migration::Refuse("ASK 100 127.0.0.1:7001".into())
        );
        assert_eq!(m.migration(100, 2, 1), Migration::Refuse(TRYAGAIN.into()));
        assert_eq!(m.migration(9000, 1, 1), Migration::Run);
        assert_eq!(m.migration(9000, 2, 1), Migration::Refuse(TRYAGAIN.into()));
        assert_eq!(m.migration(5, 2, 2), Migration::Run);
    }

    #[test]
    fn endpoints_as_configured() {
        let mut m = map();
        m.nodes[1].hostname = "b.example".into();
        m.endpoint = EndpointType::Hostname;
        assert_eq!(m.moved(9001), "MOVED 9001 b.example:7001");
        m.endpoint = EndpointType::UnknownEndpoint;
        assert_eq!(m.moved(9001), "MOVED 9001 ?:7001");
    }
}
