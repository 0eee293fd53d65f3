//! Replicas taking over their master's slots: Redis 7.0's automatic
//! failover (`clusterHandleSlaveFailover`, the votes of
//! `clusterSendFailoverAuthIfNeeded`, `clusterFailoverReplaceYourMaster`),
//! manual failover (`CLUSTER FAILOVER`, MFSTART, the paused master's
//! offset) and replica migration (`clusterHandleSlaveMigration`).
//!
//! One change from Redis, on purpose: the fixed part of the election delay
//! is `min(500, node_timeout / 30)` ms and the random part up to twice that
//! (Redis: 500 + 0–500 ms), as Valkey shortens it, and the delay starts
//! when the master is flagged FAIL rather than at the next cron tick. The delay lets the FAIL
//! message reach the voters before the request does; a FAIL is broadcast
//! at once, so a fraction of the node timeout is enough, and the rank
//! (1000 ms per better replica) still orders the replicas. See
//! docs/failover.md.

use super::{Action, Cluster};
use crate::wire::{flags, mflags0, msg_type, Body, Header};
use crate::NodeId;
use rand::RngCore;

/// A manual failover must complete within this (`CLUSTER_MF_TIMEOUT`).
pub const MF_TIMEOUT_MS: u64 = 5000;
/// The master pauses its writers this many times [`MF_TIMEOUT_MS`] at
/// most (`CLUSTER_MF_PAUSE_MULT`).
pub const MF_PAUSE_MULT: u64 = 2;
/// A master must be orphaned this long before a replica migrates to it
/// (`CLUSTER_SLAVE_MIGRATION_DELAY`).
pub const MIGRATION_DELAY_MS: u64 = 5000;
/// The same reason for not failing over is logged again after this
/// (`CLUSTER_CANT_FAILOVER_RELOG_PERIOD`).
const CANT_FAILOVER_RELOG_MS: u64 = 300_000;

/// Why a replica is not failing over (`CLUSTER_CANT_FAILOVER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Cant {
    #[default]
    None,
    DataAge,
    WaitingDelay,
    Expired,
    WaitingVotes,
}

/// The election and manual failover state (`failover_auth_*`, `mf_*`).
#[derive(Debug, Clone, Default)]
pub(super) struct Election {
    /// When the election may start, or started (0: never).
    auth_time: u64,
    /// The masters that acknowledged this election (Redis counts acks;
    /// a set cannot count one master twice).
    auth_voters: std::collections::BTreeSet<NodeId>,
    /// The majority needed when the votes were asked for: a view that
    /// loses masters meanwhile (messages of a partition healing) does not
    /// lower it.
    auth_needed: usize,
    auth_sent: bool,
    auth_rank: usize,
    auth_epoch: u64,
    cant: Cant,
    cant_logged_at: u64,
    /// Manual failover: when it is given up (0: none in progress).
    pub(super) mf_end: u64,
    mf_can_start: bool,
    /// On a master: the replica that asked for the manual failover, and
    /// the replication offset its writers stopped at once every core
    /// paused them ([`Cluster::writes_paused`]).
    mf_replica: Option<NodeId>,
    pub(super) mf_paused_offset: Option<i64>,
    /// On a replica: the paused master's offset, -1 until it came.
    mf_master_offset: i64,
    /// Run [`Cluster::handle_replica_failover`] before returning.
    pub(super) todo: bool,
}

/// How CLUSTER FAILOVER was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverMode {
    /// Wait for the master's offset, then an election it takes part in.
    Default,
    /// An election without the master's agreement (it may be down).
    Force,
    /// No election: take a new epoch and the slots at once.
    Takeover,
}

impl Election {
    pub(super) fn new() -> Election {
        Election {
            mf_master_offset: -1,
            ..Default::default()
        }
    }
}

impl Cluster {
    /// What the replication layer reports (each tick): this node's
    /// replication offset (as a replica, what it has processed; as a
    /// master, `master_repl_offset`) and, as a replica, how many ms its
    /// data lags: since the last interaction with its master while the
    /// link is up, since the link went down otherwise.
    pub fn set_replication(&mut self, offset: i64, data_age_ms: u64) {
        self.repl_offset = offset;
        self.data_age_ms = data_age_ms;
    }

    /// CLUSTER FAILOVER on this node (`clusterCommand`'s failover part):
    /// checks, then starts the manual failover.
    pub fn failover(
        &mut self,
        now_ms: u64,
        mode: FailoverMode,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<Action>, String> {
        let me = &self.nodes[&self.myself];
        if me.is_master() {
            return Err("You should send CLUSTER FAILOVER to a replica".into());
        }
        let Some(master) = me.slaveof.and_then(|m| self.nodes.get(&m)) else {
            return Err("I'm a replica but my master is unknown to me".into());
        };
        if mode == FailoverMode::Default && (master.has(flags::FAIL) || master.link.is_none()) {
            return Err("Master is down or failed, please use CLUSTER FAILOVER FORCE".into());
        }
        let master = master.id;
        self.reset_manual_failover();
        self.election.mf_end = now_ms + MF_TIMEOUT_MS;
        match mode {
            FailoverMode::Takeover => {
                self.log("Taking over the master (user request).".into());
                self.bump_epoch_without_consensus();
                self.replace_my_master(now_ms, rng);
            }
            FailoverMode::Force => {
                self.log("Forced failover user request accepted.".into());
                self.election.mf_can_start = true;
                self.election.todo = true;
            }
            FailoverMode::Default => {
                self.log("Manual failover user request accepted.".into());
                if let Some(link) = self.nodes[&master].link {
                    self.send(link, Body::MfStart);
                }
            }
        }
        self.run_failover(now_ms, rng);
        Ok(self.finish())
    }

    pub(super) fn log(&mut self, line: String) {
        self.out.push(Action::Log {
            warning: true,
            line,
        });
    }

    /// Header fields the failover reads from every known sender.
    pub(super) fn note_sender(&mut self, sender: NodeId, h: &Header) {
        let Some(n) = self.nodes.get_mut(&sender) else {
            return;
        };
        n.repl_offset = h.offset as i64;
        let me = &self.nodes[&self.myself];
        if self.election.mf_end != 0
            && me.has(flags::SLAVE)
            && me.slaveof == Some(sender)
            && h.mflags[0] & mflags0::PAUSED != 0
            && self.election.mf_master_offset == -1
        {
            self.election.mf_master_offset = h.offset as i64;
            self.log(format!(
                "Received replication offset for paused master manual failover: {}",
                h.offset
            ));
        }
    }

    /// `id` was just flagged FAIL: if it is this replica's master, the
    /// election's delay starts now rather than at the next tick.
    pub(super) fn failed_now(&mut self, id: NodeId) {
        let me = &self.nodes[&self.myself];
        if me.has(flags::SLAVE) && me.slaveof == Some(id) {
            self.election.todo = true;
        }
    }

    /// FAILOVER_AUTH_REQUEST, FAILOVER_AUTH_ACK and MFSTART from `sender`.
    pub(super) fn process_failover_msg(
        &mut self,
        now: u64,
        sender: NodeId,
        msg: &crate::wire::Msg,
    ) {
        match msg.body {
            Body::FailoverAuthRequest => self.vote_if_needed(now, sender, &msg.header),
            Body::FailoverAuthAck => {
                let n = &self.nodes[&sender];
                if n.is_master()
                    && n.numslots > 0
                    && msg.header.current_epoch >= self.election.auth_epoch
                {
                    self.election.auth_voters.insert(sender);
                    self.election.todo = true;
                }
            }
            Body::MfStart => {
                let me = &self.nodes[&self.myself];
                if !me.is_master() || self.nodes[&sender].slaveof != Some(self.myself) {
                    return;
                }
                self.reset_manual_failover();
                self.election.mf_end = now + MF_TIMEOUT_MS;
                self.election.mf_replica = Some(sender);
                self.out.push(Action::PauseWrites {
                    until_ms: now + MF_TIMEOUT_MS * MF_PAUSE_MULT,
                });
                self.log(format!("Manual failover requested by replica {sender}."));
                // The replica hears the offset, flagged PAUSED, once the
                // driver reports every core paused (`writes_paused`).
            }
            _ => {}
        }
    }

    /// `clusterSendFailoverAuthIfNeeded`.
    fn vote_if_needed(&mut self, now: u64, node: NodeId, request: &Header) {
        let me = &self.nodes[&self.myself];
        if !me.is_master() || me.numslots == 0 {
            return;
        }
        if request.current_epoch < self.current_epoch {
            self.log(format!(
                "Failover auth denied to {node}: reqEpoch ({}) < curEpoch({})",
                request.current_epoch, self.current_epoch
            ));
            return;
        }
        if self.last_vote_epoch == self.current_epoch {
            self.log(format!(
                "Failover auth denied to {node}: already voted for epoch {}",
                self.current_epoch
            ));
            return;
        }
        let force_ack = request.mflags[0] & mflags0::FORCEACK != 0;
        let n = &self.nodes[&node];
        let master = n.slaveof.and_then(|m| self.nodes.get(&m));
        let refusal = if n.is_master() {
            Some("it is a master node")
        } else {
            match master {
                None => Some("I don't know its master"),
                Some(m) if !m.has(flags::FAIL) && !force_ack => Some("its master is up"),
                _ => None,
            }
        };
        if let Some(why) = refusal {
            self.log(format!("Failover auth denied to {node}: {why}"));
            return;
        }
        let master = master.expect("checked").id;
        let ban = self.config.node_timeout_ms * 2;
        let since = now.saturating_sub(self.nodes[&master].voted_time);
        if since < ban {
            self.log(format!(
                "Failover auth denied to {node}: can't vote about this master before {} milliseconds",
                ban - since
            ));
            return;
        }
        for slot in request.myslots.iter() {
            let Some(owner) = self.slots[slot as usize] else {
                continue;
            };
            if self.not_claimed.get(slot) {
                continue;
            }
            let epoch = self.nodes[&owner].config_epoch;
            if epoch <= request.config_epoch {
                continue;
            }
            self.log(format!(
                "Failover auth denied to {node}: slot {slot} epoch ({epoch}) > reqEpoch ({})",
                request.config_epoch
            ));
            return;
        }
        self.last_vote_epoch = self.current_epoch;
        self.nodes.get_mut(&master).expect("master").voted_time = now;
        self.todo_save = true;
        if let Some(link) = self.nodes[&node].link {
            self.send(link, Body::FailoverAuthAck);
        }
        self.log(format!(
            "Failover auth granted to {node} for epoch {}",
            self.current_epoch
        ));
    }

    /// `clusterGetSlaveRank`: how many replicas of my master that may fail
    /// over claim more data than this one.
    fn rank(&self) -> usize {
        let me = &self.nodes[&self.myself];
        let Some(master) = me.slaveof else { return 0 };
        self.nodes
            .values()
            .filter(|n| {
                n.id != self.myself
                    && n.has(flags::SLAVE)
                    && n.slaveof == Some(master)
                    && !n.has(flags::NOFAILOVER)
                    && n.repl_offset > self.repl_offset
            })
            .count()
    }

    /// `clusterLogCantFailover`: only a changed reason, or the same one
    /// after a while, and never in the first node timeout + 5 s of a FAIL.
    fn cant_failover(&mut self, now: u64, reason: Cant) {
        let e = &mut self.election;
        if reason == e.cant && now.saturating_sub(e.cant_logged_at) < CANT_FAILOVER_RELOG_MS {
            return;
        }
        e.cant = reason;
        let me = &self.nodes[&self.myself];
        let quiet = self.config.node_timeout_ms + 5000;
        if let Some(m) = me.slaveof.and_then(|m| self.nodes.get(&m)) {
            if m.has(flags::FAIL) && now.saturating_sub(m.fail_time) < quiet {
                return;
            }
        }
        let why = match reason {
            Cant::DataAge => "Disconnected from master for longer than allowed. Please check the 'cluster-replica-validity-factor' configuration option.",
            Cant::WaitingDelay => "Waiting the delay before I can start a new failover.",
            Cant::Expired => "Failover attempt expired.",
            Cant::WaitingVotes => "Waiting for votes, but majority still not reached.",
            Cant::None => "Unknown reason code.",
        };
        self.election.cant_logged_at = now;
        self.log(format!("Currently unable to failover: {why}"));
    }

    /// The part of an election delay before the rank's: Redis's 500 ms
    /// plus 0–500 ms, shortened with the node timeout (see the module doc):
    /// a fixed `min(500, node_timeout / 30)` and twice that at random, so
    /// that replicas of equal rank seldom ask for votes at once.
    fn election_delay(&self, rng: &mut dyn RngCore) -> u64 {
        let fixed = (self.config.node_timeout_ms / 30).min(500);
        fixed + rng.next_u64() % (2 * fixed + 1)
    }

    /// The manual failover's step (`clusterHandleManualFailover`), then the
    /// election's (`clusterHandleSlaveFailover`).
    pub(super) fn run_failover(&mut self, now: u64, rng: &mut dyn RngCore) {
        self.election.todo = false;
        if self.nodes[&self.myself].has(flags::SLAVE) {
            self.handle_manual_failover();
            self.handle_replica_failover(now, rng);
        }
    }

    fn handle_manual_failover(&mut self) {
        let e = &self.election;
        if e.mf_end == 0 || e.mf_can_start || e.mf_master_offset == -1 {
            return;
        }
        if e.mf_master_offset == self.repl_offset {
            self.election.mf_can_start = true;
            self.log("All master replication stream processed, manual failover can start.".into());
        }
    }

    /// `clusterHandleSlaveFailover`.
    fn handle_replica_failover(&mut self, now: u64, rng: &mut dyn RngCore) {
        let timeout = self.config.node_timeout_ms;
        let auth_age = now.saturating_sub(self.election.auth_time);
        let needed = self.size() / 2 + 1;
        let manual = self.election.mf_end != 0 && self.election.mf_can_start;
        let auth_timeout = (timeout * 2).max(2000);
        let auth_retry = auth_timeout * 2;
        let me = &self.nodes[&self.myself];
        let master = me.slaveof.and_then(|m| self.nodes.get(&m));
        let go = match master {
            Some(m) => {
                (manual || (m.has(flags::FAIL) && !self.config.replica_no_failover))
                    && m.numslots > 0
            }
            None => false,
        };
        if me.is_master() || !go {
            self.election.cant = Cant::None;
            return;
        }
        let mut data_age = self.data_age_ms;
        if data_age > timeout {
            data_age -= timeout;
        }
        let factor = self.config.replica_validity_factor;
        if factor != 0 && data_age > self.config.repl_ping_period_ms + timeout * factor && !manual {
            self.cant_failover(now, Cant::DataAge);
            return;
        }
        if self.election.auth_time == 0 || auth_age > auth_retry {
            let rank = self.rank();
            let mut at = now + self.election_delay(rng) + rank as u64 * 1000;
            let mut rank = rank;
            if self.election.mf_end != 0 {
                at = now;
                rank = 0;
                self.election.todo = true;
            }
            let e = &mut self.election;
            e.auth_time = at;
            e.auth_voters.clear();
            e.auth_sent = false;
            e.auth_rank = rank;
            let offset = self.repl_offset;
            self.log(format!(
                "Start of election delayed for {} milliseconds (rank #{rank}, offset {offset}).",
                at - now
            ));
            // Tell the other replicas of my master my offset.
            self.broadcast_pong(now, true, rng);
            if !self.election.todo {
                return;
            }
            self.election.todo = false;
        }
        if !self.election.auth_sent && self.election.mf_end == 0 {
            let rank = self.rank();
            if rank > self.election.auth_rank {
                let added = (rank - self.election.auth_rank) as u64 * 1000;
                self.election.auth_time += added;
                self.election.auth_rank = rank;
                self.log(format!(
                    "Replica rank updated to #{rank}, added {added} milliseconds of delay."
                ));
            }
        }
        if now < self.election.auth_time {
            self.cant_failover(now, Cant::WaitingDelay);
            return;
        }
        if now - self.election.auth_time > auth_timeout {
            self.cant_failover(now, Cant::Expired);
            return;
        }
        if !self.election.auth_sent {
            // A peer or nodes.conf may have set it to the largest value.
            self.current_epoch = self.current_epoch.saturating_add(1);
            self.election.auth_epoch = self.current_epoch;
            self.log(format!(
                "Starting a failover election for epoch {}.",
                self.current_epoch
            ));
            self.request_votes();
            self.election.auth_sent = true;
            self.election.auth_needed = needed;
            self.todo_save = true;
            self.todo_update_state = true;
            return;
        }
        if self.election.auth_voters.len() >= needed.max(self.election.auth_needed) {
            self.log("Failover election won: I'm the new master.".into());
            let epoch = self.election.auth_epoch;
            let me = self.nodes.get_mut(&self.myself).expect("myself");
            if me.config_epoch < epoch {
                me.config_epoch = epoch;
                self.log(format!(
                    "configEpoch set to {epoch} after successful failover"
                ));
            }
            self.replace_my_master(now, rng);
        } else {
            self.cant_failover(now, Cant::WaitingVotes);
        }
    }

    /// `clusterRequestFailoverAuth`: to every node, FORCEACK during a
    /// manual failover.
    fn request_votes(&mut self) {
        let mut header = self.header();
        if self.election.mf_end != 0 {
            header.mflags[0] |= mflags0::FORCEACK;
        }
        let links: Vec<_> = self
            .nodes
            .values()
            .filter(|n| !n.has(flags::MYSELF | flags::HANDSHAKE))
            .filter_map(|n| n.link)
            .collect();
        for link in links {
            self.send_with(link, header.clone(), Body::FailoverAuthRequest);
        }
    }

    /// `clusterFailoverReplaceYourMaster`: this replica becomes a master,
    /// takes its master's slots, and tells everybody.
    fn replace_my_master(&mut self, now: u64, rng: &mut dyn RngCore) {
        let me = &self.nodes[&self.myself];
        let Some(old) = me.slaveof.filter(|_| me.has(flags::SLAVE)) else {
            return;
        };
        self.set_node_as_master(self.myself);
        let slots: Vec<u16> = self
            .nodes
            .get(&old)
            .map(|n| n.slots.iter().collect())
            .unwrap_or_default();
        for slot in slots {
            self.del_slot(slot);
            self.add_slot(self.myself, slot);
        }
        self.todo_save = true;
        self.todo_update_state = true;
        self.todo_slot_map = true;
        self.broadcast_pong(now, false, rng);
        self.reset_manual_failover();
    }

    /// `clusterBroadcastPong`: to every linked node, or only to the other
    /// replicas of my master.
    pub(super) fn broadcast_pong(&mut self, now: u64, local_replicas: bool, rng: &mut dyn RngCore) {
        let me = &self.nodes[&self.myself];
        let my_master = if me.is_master() {
            Some(self.myself)
        } else {
            me.slaveof
        };
        let links: Vec<_> = self
            .nodes
            .values()
            .filter(|n| !n.has(flags::MYSELF | flags::HANDSHAKE))
            .filter(|n| !local_replicas || (n.has(flags::SLAVE) && n.slaveof == my_master))
            .filter_map(|n| n.link)
            .collect();
        for link in links {
            self.send_ping(now, link, msg_type::PONG, rng);
        }
    }

    /// Every core of this master paused its writers for the manual
    /// failover, which stopped at replication `offset`: the replica hears
    /// it now and with each tick, flagged PAUSED (`clusterSendPing` while
    /// `mf_end` is set).
    pub fn writes_paused(
        &mut self,
        now_ms: u64,
        offset: i64,
        rng: &mut dyn RngCore,
    ) -> Vec<Action> {
        self.now = now_ms;
        if self.election.mf_replica.is_some() && self.election.mf_end != 0 {
            self.election.mf_paused_offset = Some(offset);
            self.ping_paused_replica(now_ms, rng);
        }
        self.finish()
    }

    fn ping_paused_replica(&mut self, now: u64, rng: &mut dyn RngCore) {
        if self.election.mf_paused_offset.is_none() {
            return;
        }
        if let Some(link) = self
            .election
            .mf_replica
            .and_then(|r| self.nodes.get(&r))
            .and_then(|n| n.link)
        {
            self.send_ping(now, link, msg_type::PING, rng);
        }
    }

    /// `resetManualFailover`: a master resumes its writers.
    pub(super) fn reset_manual_failover(&mut self) {
        if self.election.mf_replica.is_some() {
            self.out.push(Action::PauseWrites { until_ms: 0 });
        }
        let e = &mut self.election;
        e.mf_end = 0;
        e.mf_can_start = false;
        e.mf_replica = None;
        e.mf_paused_offset = None;
        e.mf_master_offset = -1;
    }

    /// The cron's failover part: the manual failover's timeout, the
    /// election, migration.
    pub(super) fn failover_cron(&mut self, now: u64, rng: &mut dyn RngCore) {
        if self.election.mf_end != 0 && self.election.mf_end < now {
            self.log("Manual failover timed out.".into());
            self.reset_manual_failover();
        }
        self.ping_paused_replica(now, rng);
        if self.nodes[&self.myself].has(flags::SLAVE) {
            self.run_failover(now, rng);
            self.migrate_if_needed(now);
        }
    }

    /// `clusterHandleSlaveMigration`, with the cron's count of the most
    /// healthy replicas a master has.
    fn migrate_if_needed(&mut self, now: u64) {
        if self.state != 0 || !self.config.allow_replica_migration {
            return;
        }
        let Some(my_master) = self.nodes[&self.myself].slaveof else {
            return;
        };
        let healthy = |c: &Cluster, m: NodeId| {
            c.nodes
                .values()
                .filter(|n| {
                    n.has(flags::SLAVE)
                        && n.slaveof == Some(m)
                        && !n.has(flags::FAIL | flags::PFAIL)
                })
                .count()
        };
        let mine = healthy(self, my_master);
        if mine as u64 <= self.config.migration_barrier {
            return;
        }
        let masters: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.is_master())
            .map(|n| n.id)
            .collect();
        let counts: Vec<(NodeId, usize)> = masters.iter().map(|&m| (m, healthy(self, m))).collect();
        let max = counts.iter().map(|c| c.1).max().unwrap_or(0);
        let mut target = None;
        let mut candidate = self.myself;
        for &(m, ok) in &counts {
            let n = self.nodes.get_mut(&m).expect("master");
            let orphaned = !n.has(flags::FAIL) && n.has(flags::MIGRATE_TO) && ok == 0;
            if orphaned {
                if target.is_none() && n.numslots > 0 {
                    target = Some(m);
                }
                if n.orphaned_time == 0 {
                    n.orphaned_time = now;
                }
            } else {
                n.orphaned_time = 0;
            }
            if ok == max {
                for r in self.nodes.values() {
                    if r.has(flags::SLAVE) && r.slaveof == Some(m) && r.id < candidate {
                        candidate = r.id;
                    }
                }
            }
        }
        let Some(target) = target else { return };
        if candidate == self.myself
            && now.saturating_sub(self.nodes[&target].orphaned_time) > MIGRATION_DELAY_MS
        {
            self.log(format!("Migrating to orphaned master {target}"));
            self.set_my_master(target);
        }
    }

    /// `clusterSetMaster` for a node that may be a master without slots.
    pub(super) fn set_my_master(&mut self, master: NodeId) {
        let me = self.nodes.get_mut(&self.myself).expect("myself");
        if me.is_master() {
            me.flags &= !(flags::MASTER | flags::MIGRATE_TO);
            me.flags |= flags::SLAVE;
            self.migrating.clear();
            self.importing.clear();
        }
        let attached = self.attach();
        let me = self.nodes.get_mut(&self.myself).expect("myself");
        me.slaveof = Some(master);
        me.attached = attached;
        if let Some(m) = self.nodes.get_mut(&master) {
            m.flags |= flags::MIGRATE_TO;
        }
        self.reset_manual_failover();
        self.election.auth_time = 0;
        self.todo_slot_map = true;
        self.todo_save = true;
        self.todo_update_state = true;
    }
}
