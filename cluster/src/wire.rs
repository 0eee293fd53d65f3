//! The cluster bus message of Redis 7.0.15 (`clusterMsg` in `cluster.h`),
//! byte for byte, in network byte order.
//!
//! Owns: the layout ([`HEADER_BYTES`] of header, then the type's data), the
//! length rules Redis's `clusterProcessPacket` applies before it looks at a
//! message, and the conversion between bytes and [`Msg`]. Nothing here knows
//! about nodes or time.
//!
//! ```text
//! offset  size  field
//!      0     4  sig "RCmb"
//!      4     4  totlen (whole message)
//!      8     2  ver (1)
//!     10     2  port
//!     12     2  type
//!     14     2  count (gossip entries of PING/PONG/MEET)
//!     16     8  currentEpoch
//!     24     8  configEpoch
//!     32     8  offset (replication)
//!     40    40  sender
//!     80  2048  myslots
//!   2128    40  slaveof (zeros: none)
//!   2168    46  myip (NUL terminated; zeros: use the socket's peer address)
//!   2214     2  extensions
//!   2216    30  notused1
//!   2246     2  pport
//!   2248     2  cport
//!   2250     2  flags
//!   2252     1  state
//!   2253     3  mflags
//!   2256        data: gossip entries (104 bytes each) then ping extensions,
//!               or FAIL, PUBLISH, UPDATE, MODULE data
//! ```
//!
//! A driver reads the first 8 bytes, calls [`frame_len`] (which rejects a bad
//! signature or length as Redis's `clusterReadHandler` does, and a length
//! above [`MSG_BYTES_MAX`]), reads the rest and calls [`decode`].

use crate::{NodeId, SlotBitmap, NODE_ID_BYTES, SLOT_BITMAP_BYTES};

/// Bytes of the header, before the type's data (`CLUSTERMSG_MIN_LEN`).
pub const HEADER_BYTES: usize = 2256;
/// Bytes of one gossip entry (`clusterMsgDataGossip`).
pub const GOSSIP_BYTES: usize = 104;
/// Bytes of an IP field (`NET_IP_STR_LEN`), including the NUL.
pub const IP_BYTES: usize = 46;
/// Bytes of a ping extension's header (`clusterMsgPingExt`: length, type, pad).
pub const EXT_HEADER_BYTES: usize = 8;
/// The protocol version this codec speaks (`CLUSTER_PROTO_VER`).
pub const PROTO_VER: u16 = 1;
/// The largest message a driver should accept: Redis has no limit but the
/// 32-bit length; 64 MiB holds any gossip section (65535 entries are 6.8 MB)
/// and PUBLISH payloads far above what a bus should carry.
pub const MSG_BYTES_MAX: usize = 64 << 20;

const SIG: &[u8; 4] = b"RCmb";
const FAIL_BYTES: usize = NODE_ID_BYTES;
const UPDATE_BYTES: usize = 8 + NODE_ID_BYTES + SLOT_BITMAP_BYTES;
/// `sizeof(clusterMsgDataPublish) - 8`: the two lengths.
const PUBLISH_FIXED_BYTES: usize = 8;
/// `sizeof(clusterMsgModule) - 3`: id, length, type.
const MODULE_FIXED_BYTES: usize = 13;

const _: () = assert!(HEADER_BYTES == 80 + SLOT_BITMAP_BYTES + 40 + IP_BYTES + 2 + 30 + 10);
const _: () = assert!(GOSSIP_BYTES == NODE_ID_BYTES + 4 + 4 + IP_BYTES + 5 * 2);
const _: () = assert!(UPDATE_BYTES == 2096);

/// Message types (`CLUSTERMSG_TYPE_*`).
pub mod msg_type {
    pub const PING: u16 = 0;
    pub const PONG: u16 = 1;
    pub const MEET: u16 = 2;
    pub const FAIL: u16 = 3;
    pub const PUBLISH: u16 = 4;
    pub const FAILOVER_AUTH_REQUEST: u16 = 5;
    pub const FAILOVER_AUTH_ACK: u16 = 6;
    pub const UPDATE: u16 = 7;
    pub const MFSTART: u16 = 8;
    pub const MODULE: u16 = 9;
    pub const PUBLISHSHARD: u16 = 10;
}

/// Node flags as carried in the header and gossip entries (`CLUSTER_NODE_*`).
pub mod flags {
    pub const MASTER: u16 = 1;
    pub const SLAVE: u16 = 2;
    pub const PFAIL: u16 = 4;
    pub const FAIL: u16 = 8;
    pub const MYSELF: u16 = 16;
    pub const HANDSHAKE: u16 = 32;
    pub const NOADDR: u16 = 64;
    pub const MEET: u16 = 128;
    pub const MIGRATE_TO: u16 = 256;
    pub const NOFAILOVER: u16 = 512;
}

/// Bits of `mflags[0]` (`CLUSTERMSG_FLAG0_*`).
pub mod mflags0 {
    /// Master paused for a manual failover.
    pub const PAUSED: u8 = 1;
    /// Give an ACK to an AUTH_REQUEST even if the master is up.
    pub const FORCEACK: u8 = 2;
    /// Ping extensions follow the gossip section. Owned by the codec: set by
    /// [`super::encode`] exactly when there are extensions, cleared by
    /// [`super::decode`].
    pub const EXT_DATA: u8 = 4;
}

/// Ping extension types of Redis 7.0 (`clusterMsgPingtypes`).
pub const EXT_TYPE_HOSTNAME: u16 = 0;

/// Why bytes are not a message Redis would process. Every variant is a
/// message Redis drops (or a link it closes); none is a programming error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the 8 of signature and length, or than the header.
    Truncated { have: usize, need: usize },
    /// The first 4 bytes are not "RCmb".
    Signature,
    /// `totlen` below the header, above [`MSG_BYTES_MAX`], or not the
    /// buffer's length.
    TotalLength { totlen: u64, have: usize },
    /// `ver` is not [`PROTO_VER`].
    Version(u16),
    /// `totlen` is not what the type and its counts add up to (Redis's
    /// "Received invalid %s packet of length %lld but expected length %lld").
    TypeLength {
        msg_type: u16,
        totlen: u64,
        expected: u64,
    },
    /// A ping extension with a length that is not a multiple of 8, shorter
    /// than its header, or past the end of the message; or extensions counted
    /// without the EXT_DATA flag.
    Extension,
    /// An IP or hostname that is not NUL-terminated printable ASCII, or
    /// holds a character `nodes.conf` cannot (a space or control; in an IP,
    /// a comma): Redis peers send IPs and `[A-Za-z0-9.-]` hostnames.
    Text(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Truncated { have, need } => {
                write!(f, "truncated message: {have} bytes, need {need}")
            }
            WireError::Signature => f.write_str("bad signature (not RCmb)"),
            WireError::TotalLength { totlen, have } => {
                write!(f, "bad total length {totlen} ({have} bytes present)")
            }
            WireError::Version(v) => write!(f, "unsupported protocol version {v}"),
            WireError::TypeLength {
                msg_type,
                totlen,
                expected,
            } => write!(
                f,
                "Received invalid {} packet of length {totlen} but expected length {expected}",
                type_name(*msg_type)
            ),
            WireError::Extension => f.write_str("malformed ping extension"),
            WireError::Text(field) => write!(
                f,
                "{field} is not NUL-terminated printable ASCII without spaces (or commas, in an IP)"
            ),
        }
    }
}

impl std::error::Error for WireError {}

/// A message type's name as Redis's `clusterGetMessageTypeString` gives it.
pub fn type_name(t: u16) -> &'static str {
    match t {
        msg_type::PING => "ping",
        msg_type::PONG => "pong",
        msg_type::MEET => "meet",
        msg_type::FAIL => "fail",
        msg_type::PUBLISH => "publish",
        msg_type::PUBLISHSHARD => "publishshard",
        msg_type::FAILOVER_AUTH_REQUEST => "auth-req",
        msg_type::FAILOVER_AUTH_ACK => "auth-ack",
        msg_type::UPDATE => "update",
        msg_type::MFSTART => "mfstart",
        msg_type::MODULE => "module",
        _ => "unknown",
    }
}

/// One cluster bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub header: Header,
    pub body: Body,
}

/// The fixed header every message carries: who sends it and its view of
/// itself. The type, `count`, `extensions` and `totlen` come from [`Body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Client port (TLS port when TLS is on).
    pub port: u16,
    pub current_epoch: u64,
    /// The sender's config epoch, or its master's if it is a replica.
    pub config_epoch: u64,
    /// Replication offset.
    pub offset: u64,
    pub sender: NodeId,
    /// Slots of the sender, or of its master if it is a replica.
    pub myslots: SlotBitmap,
    /// The sender's master; [`NodeId::NULL`] for a master.
    pub slaveof: NodeId,
    /// Announced IP; empty: the receiver uses the socket's peer address.
    pub myip: String,
    /// Plaintext client port when `port` is TLS.
    pub pport: u16,
    /// Cluster bus port.
    pub cport: u16,
    /// The sender's node flags ([`flags`]).
    pub flags: u16,
    /// The sender's cluster state: 0 ok, 1 fail.
    pub state: u8,
    /// Message flags ([`mflags0`] for byte 0; EXT_DATA is the codec's).
    pub mflags: [u8; 3],
}

/// What follows the header, by message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Ping(Gossip),
    Pong(Gossip),
    Meet(Gossip),
    /// The named node is failing.
    Fail {
        about: NodeId,
    },
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    PublishShard {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    FailoverAuthRequest,
    FailoverAuthAck,
    MfStart,
    /// `node` serves `slots` under `config_epoch`.
    Update {
        config_epoch: u64,
        node: NodeId,
        slots: SlotBitmap,
    },
    Module {
        /// Copied as is by Redis ("endian-safe ID").
        module_id: [u8; 8],
        kind: u8,
        payload: Vec<u8>,
    },
    /// A type Redis 7.0 does not know: its data, which Redis accepts
    /// whatever its length and ignores.
    Unknown {
        msg_type: u16,
        data: Vec<u8>,
    },
}

/// The data of PING, PONG and MEET.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gossip {
    pub entries: Vec<GossipEntry>,
    pub extensions: Vec<PingExt>,
}

/// What the sender knows about another node (`clusterMsgDataGossip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipEntry {
    pub node: NodeId,
    /// Seconds (Redis sends `ping_sent / 1000`).
    pub ping_sent: u32,
    /// Seconds.
    pub pong_received: u32,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub flags: u16,
    pub pport: u16,
}

/// A ping extension (`clusterMsgPingExt`), padded to 8 bytes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingExt {
    /// The sender's announced hostname (`cluster-announce-hostname`).
    Hostname(String),
    /// A type Redis 7.0 does not know (7.2's human node name, forgotten node,
    /// shard id): Redis logs and skips it; its data without the header.
    Unknown { kind: u16, data: Vec<u8> },
}

impl Body {
    /// The `type` field for this body.
    pub fn msg_type(&self) -> u16 {
        match self {
            Body::Ping(_) => msg_type::PING,
            Body::Pong(_) => msg_type::PONG,
            Body::Meet(_) => msg_type::MEET,
            Body::Fail { .. } => msg_type::FAIL,
            Body::Publish { .. } => msg_type::PUBLISH,
            Body::PublishShard { .. } => msg_type::PUBLISHSHARD,
            Body::FailoverAuthRequest => msg_type::FAILOVER_AUTH_REQUEST,
            Body::FailoverAuthAck => msg_type::FAILOVER_AUTH_ACK,
            Body::MfStart => msg_type::MFSTART,
            Body::Update { .. } => msg_type::UPDATE,
            Body::Module { .. } => msg_type::MODULE,
            Body::Unknown { msg_type, .. } => *msg_type,
        }
    }
}

/// The message length announced by the first 8 bytes of a frame, checked as
/// Redis's `clusterReadHandler` does (signature, at least the header) and
/// against [`MSG_BYTES_MAX`]. A driver closes the link on an error.
pub fn frame_len(first8: &[u8; 8]) -> Result<usize, WireError> {
    if &first8[..4] != SIG {
        return Err(WireError::Signature);
    }
    let totlen = u32::from_be_bytes([first8[4], first8[5], first8[6], first8[7]]) as usize;
    if !(HEADER_BYTES..=MSG_BYTES_MAX).contains(&totlen) {
        return Err(WireError::TotalLength {
            totlen: totlen as u64,
            have: 8,
        });
    }
    Ok(totlen)
}

/// A read cursor over a message; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(WireError::Truncated {
            have: self.buf.len(),
            need: self.pos.saturating_add(n),
        })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn node(&mut self) -> Result<NodeId, WireError> {
        Ok(NodeId(self.array()?))
    }
    fn slots(&mut self) -> Result<SlotBitmap, WireError> {
        Ok(SlotBitmap(Box::new(self.array()?)))
    }
    fn ip(&mut self, field: &'static str) -> Result<String, WireError> {
        let ip = text(self.bytes(IP_BYTES)?, field)?;
        if ip.contains(',') {
            return Err(WireError::Text(field));
        }
        Ok(ip)
    }
}

/// The NUL-terminated text at the start of `raw`: printable ASCII without
/// spaces, as a `nodes.conf` field must be.
fn text(raw: &[u8], field: &'static str) -> Result<String, WireError> {
    let end = raw
        .iter()
        .position(|&b| b == 0)
        .ok_or(WireError::Text(field))?;
    let s = &raw[..end];
    if !s.iter().all(u8::is_ascii_graphic) {
        return Err(WireError::Text(field));
    }
    Ok(String::from_utf8_lossy(s).into_owned())
}

/// Parses one whole message (`buf` is exactly `totlen` bytes). Never panics;
/// rejects what Redis 7.0's `clusterProcessPacket` drops before acting on a
/// message (length below 16 or not the buffer's, wrong version, a length that
/// does not match the type), plus what Redis would read out of bounds or not
/// NUL-terminated.
pub fn decode(buf: &[u8]) -> Result<Msg, WireError> {
    if buf.len() < 8 {
        return Err(WireError::Truncated {
            have: buf.len(),
            need: 8,
        });
    }
    if &buf[..4] != SIG {
        return Err(WireError::Signature);
    }
    let totlen = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as u64;
    if totlen != buf.len() as u64 || buf.len() < HEADER_BYTES {
        return Err(WireError::TotalLength {
            totlen,
            have: buf.len(),
        });
    }
    let mut r = Reader { buf, pos: 8 };
    let ver = r.u16()?;
    if ver != PROTO_VER {
        return Err(WireError::Version(ver));
    }
    let port = r.u16()?;
    let kind = r.u16()?;
    let count = r.u16()?;
    let current_epoch = r.u64()?;
    let config_epoch = r.u64()?;
    let offset = r.u64()?;
    let sender = r.node()?;
    let myslots = r.slots()?;
    let slaveof = r.node()?;
    let myip = r.ip("myip")?;
    let extensions = r.u16()?;
    r.bytes(30)?;
    let pport = r.u16()?;
    let cport = r.u16()?;
    let node_flags = r.u16()?;
    let state = r.u8()?;
    let mut mflags: [u8; 3] = r.array()?;
    let has_ext = mflags[0] & mflags0::EXT_DATA != 0;
    mflags[0] &= !mflags0::EXT_DATA;
    debug_assert_eq!(r.pos, HEADER_BYTES);
    let header = Header {
        port,
        current_epoch,
        config_epoch,
        offset,
        sender,
        myslots,
        slaveof,
        myip,
        pport,
        cport,
        flags: node_flags,
        state,
        mflags,
    };
    let data = &buf[HEADER_BYTES..];
    let wrong_length = |expected: u64| WireError::TypeLength {
        msg_type: kind,
        totlen,
        expected,
    };
    let exact = |fixed: usize| -> Result<(), WireError> {
        let expected = (HEADER_BYTES + fixed) as u64;
        if totlen == expected {
            Ok(())
        } else {
            Err(wrong_length(expected))
        }
    };
    let mut r = Reader { buf: data, pos: 0 };
    let body = match kind {
        msg_type::PING | msg_type::PONG | msg_type::MEET => {
            let gossip_len = GOSSIP_BYTES * count as usize;
            if data.len() < gossip_len {
                return Err(wrong_length((HEADER_BYTES + gossip_len) as u64));
            }
            let mut entries = Vec::with_capacity(count as usize);
            for _ in 0..count {
                entries.push(GossipEntry {
                    node: r.node()?,
                    ping_sent: r.u32()?,
                    pong_received: r.u32()?,
                    ip: r.ip("gossip ip")?,
                    port: r.u16()?,
                    cport: r.u16()?,
                    flags: r.u16()?,
                    pport: r.u16()?,
                });
                r.u16()?; // notused1
            }
            let extensions = if has_ext {
                decode_extensions(&mut r, extensions)?
            } else if extensions != 0 {
                // Redis would walk them out of bounds of what it validated.
                return Err(WireError::Extension);
            } else {
                Vec::new()
            };
            if r.pos != data.len() {
                return Err(wrong_length((HEADER_BYTES + r.pos) as u64));
            }
            let gossip = Gossip {
                entries,
                extensions,
            };
            match kind {
                msg_type::PING => Body::Ping(gossip),
                msg_type::PONG => Body::Pong(gossip),
                _ => Body::Meet(gossip),
            }
        }
        msg_type::FAIL => {
            exact(FAIL_BYTES)?;
            Body::Fail { about: r.node()? }
        }
        msg_type::PUBLISH | msg_type::PUBLISHSHARD => {
            let lens = if data.len() >= PUBLISH_FIXED_BYTES {
                Some((r.u32()? as u64, r.u32()? as u64))
            } else {
                None
            };
            let (channel_len, message_len) = lens.unwrap_or((0, 0));
            let expected = (HEADER_BYTES + PUBLISH_FIXED_BYTES) as u64 + channel_len + message_len;
            if lens.is_none() || totlen != expected {
                return Err(wrong_length(expected));
            }
            let channel = r.bytes(channel_len as usize)?.to_vec();
            let message = r.bytes(message_len as usize)?.to_vec();
            if kind == msg_type::PUBLISH {
                Body::Publish { channel, message }
            } else {
                Body::PublishShard { channel, message }
            }
        }
        msg_type::FAILOVER_AUTH_REQUEST | msg_type::FAILOVER_AUTH_ACK | msg_type::MFSTART => {
            exact(0)?;
            match kind {
                msg_type::FAILOVER_AUTH_REQUEST => Body::FailoverAuthRequest,
                msg_type::FAILOVER_AUTH_ACK => Body::FailoverAuthAck,
                _ => Body::MfStart,
            }
        }
        msg_type::UPDATE => {
            exact(UPDATE_BYTES)?;
            Body::Update {
                config_epoch: r.u64()?,
                node: r.node()?,
                slots: r.slots()?,
            }
        }
        msg_type::MODULE => {
            if data.len() < MODULE_FIXED_BYTES {
                return Err(wrong_length((HEADER_BYTES + MODULE_FIXED_BYTES) as u64));
            }
            let module_id = r.array()?;
            let len = r.u32()? as u64;
            let kind = r.u8()?;
            let expected = (HEADER_BYTES + MODULE_FIXED_BYTES) as u64 + len;
            if totlen != expected {
                return Err(wrong_length(expected));
            }
            Body::Module {
                module_id,
                kind,
                payload: r.bytes(len as usize)?.to_vec(),
            }
        }
        other => Body::Unknown {
            msg_type: other,
            data: data.to_vec(),
        },
    };
    Ok(Msg { header, body })
}

fn decode_extensions(r: &mut Reader<'_>, count: u16) -> Result<Vec<PingExt>, WireError> {
    let mut out = Vec::new();
    for _ in 0..count {
        let len = r.u32().map_err(|_| WireError::Extension)? as usize;
        let kind = r.u16().map_err(|_| WireError::Extension)?;
        r.u16().map_err(|_| WireError::Extension)?;
        if !len.is_multiple_of(8) || len < EXT_HEADER_BYTES {
            return Err(WireError::Extension);
        }
        let data = r
            .bytes(len - EXT_HEADER_BYTES)
            .map_err(|_| WireError::Extension)?;
        out.push(match kind {
            EXT_TYPE_HOSTNAME => PingExt::Hostname(text(data, "hostname")?),
            _ => PingExt::Unknown {
                kind,
                data: data.to_vec(),
            },
        });
    }
    Ok(out)
}

/// A write cursor.
struct Writer(Vec<u8>);

impl Writer {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn zeros(&mut self, n: usize) {
        self.0.resize(self.0.len() + n, 0);
    }
    /// `s` in a NUL-terminated field of `width` bytes, cut to fit.
    fn text(&mut self, s: &str, width: usize) {
        let b = &s.as_bytes()[..s.len().min(width - 1)];
        self.bytes(b);
        self.zeros(width - b.len());
    }
}

/// Encodes a message as Redis 7.0 sends it. Counts that do not fit their
/// 16-bit fields (more than 65535 gossip entries or extensions) are cut, and
/// texts too long for their fields are cut, so the result always decodes.
pub fn encode(msg: &Msg) -> Vec<u8> {
    let h = &msg.header;
    let mut w = Writer(Vec::with_capacity(HEADER_BYTES + 256));
    let (count, extensions) = match &msg.body {
        Body::Ping(g) | Body::Pong(g) | Body::Meet(g) => (
            g.entries.len().min(u16::MAX as usize) as u16,
            g.extensions.len().min(u16::MAX as usize) as u16,
        ),
        _ => (0, 0),
    };
    w.bytes(SIG);
    w.u32(0); // totlen, patched below
    w.u16(PROTO_VER);
    w.u16(h.port);
    w.u16(msg.body.msg_type());
    w.u16(count);
    w.u64(h.current_epoch);
    w.u64(h.config_epoch);
    w.u64(h.offset);
    w.bytes(&h.sender.0);
    w.bytes(&h.myslots.0[..]);
    w.bytes(&h.slaveof.0);
    w.text(&h.myip, IP_BYTES);
    w.u16(extensions);
    w.zeros(30);
    w.u16(h.pport);
    w.u16(h.cport);
    w.u16(h.flags);
    w.0.push(h.state);
    let mut mflags = h.mflags;
    mflags[0] &= !mflags0::EXT_DATA;
    if extensions > 0 {
        mflags[0] |= mflags0::EXT_DATA;
    }
    w.bytes(&mflags);
    debug_assert_eq!(w.0.len(), HEADER_BYTES);
    match &msg.body {
        Body::Ping(g) | Body::Pong(g) | Body::Meet(g) => {
            for e in g.entries.iter().take(count as usize) {
                w.bytes(&e.node.0);
                w.u32(e.ping_sent);
                w.u32(e.pong_received);
                w.text(&e.ip, IP_BYTES);
                w.u16(e.port);
                w.u16(e.cport);
                w.u16(e.flags);
                w.u16(e.pport);
                w.u16(0);
            }
            for ext in g.extensions.iter().take(extensions as usize) {
                let (kind, data): (u16, &[u8]) = match ext {
                    PingExt::Hostname(name) => (EXT_TYPE_HOSTNAME, name.as_bytes()),
                    PingExt::Unknown { kind, data } => (*kind, data),
                };
                // A hostname keeps at least one NUL; everything pads to 8.
                let nul = usize::from(matches!(ext, PingExt::Hostname(_)));
                let padded = (data.len() + nul).div_ceil(8) * 8;
                w.u32((EXT_HEADER_BYTES + padded) as u32);
                w.u16(kind);
                w.u16(0);
                w.bytes(data);
                w.zeros(padded - data.len());
            }
        }
        Body::Fail { about } => w.bytes(&about.0),
        Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
            w.u32(channel.len() as u32);
            w.u32(message.len() as u32);
            w.bytes(channel);
            w.bytes(message);
        }
        Body::FailoverAuthRequest | Body::FailoverAuthAck | Body::MfStart => {}
        Body::Update {
            config_epoch,
            node,
            slots,
        } => {
            w.u64(*config_epoch);
            w.bytes(&node.0);
            w.bytes(&slots.0[..]);
        }
        Body::Module {
            module_id,
            kind,
            payload,
        } => {
            w.bytes(module_id);
            w.u32(payload.len() as u32);
            w.0.push(*kind);
            w.bytes(payload);
        }
        Body::Unknown { data, .. } => w.bytes(data),
    }
    let totlen = w.0.len() as u32;
    w.0[4..8].copy_from_slice(&totlen.to_be_bytes());
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};

    fn header(rng: &mut StdRng) -> Header {
        let mut myslots = SlotBitmap::new();
        rng.fill_bytes(&mut myslots.0[..]);
        Header {
            port: rng.gen(),
            current_epoch: rng.gen(),
            config_epoch: rng.gen(),
            offset: rng.gen(),
            sender: NodeId::random(rng),
            myslots,
            slaveof: if rng.gen() {
                NodeId::NULL
            } else {
                NodeId::random(rng)
            },
            myip: if rng.gen() {
                String::new()
            } else {
                "2001:db8::ff00:42:8329".into()
            },
            pport: rng.gen(),
            cport: rng.gen(),
            flags: rng.gen(),
            state: rng.gen(),
            mflags: [rng.gen::<u8>() & !mflags0::EXT_DATA, rng.gen(), rng.gen()],
        }
    }

    fn bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
        let mut v = vec![0; rng.gen_range(0..=max)];
        rng.fill_bytes(&mut v);
        v
    }

    fn body(rng: &mut StdRng) -> Body {
        match rng.gen_range(0..12) {
            0..=2 => {
                let entries = (0..rng.gen_range(0..12))
                    .map(|_| GossipEntry {
                        node: NodeId::random(rng),
                        ping_sent: rng.gen(),
                        pong_received: rng.gen(),
                        ip: "127.0.0.1".into(),
                        port: rng.gen(),
                        cport: rng.gen(),
                        flags: rng.gen(),
                        pport: rng.gen(),
                    })
                    .collect();
                let extensions = (0..rng.gen_range(0..3))
                    .map(|_| {
                        if rng.gen() {
                            let len = rng.gen_range(0..20);
                            PingExt::Hostname("h".repeat(len))
                        } else {
                            let mut data = bytes(rng, 3);
                            data.resize(data.len() * 8, 7);
                            PingExt::Unknown {
                                kind: rng.gen_range(1..9),
                                data,
                            }
                        }
                    })
                    .collect();
                let g = Gossip {
                    entries,
                    extensions,
                };
                [Body::Ping, Body::Pong, Body::Meet][rng.gen_range(0..3)](g)
            }
            3 => Body::Fail {
                about: NodeId::random(rng),
            },
            4 => Body::Publish {
                channel: bytes(rng, 30),
                message: bytes(rng, 300),
            },
            5 => Body::PublishShard {
                channel: bytes(rng, 30),
                message: bytes(rng, 3),
            },
            6 => Body::FailoverAuthRequest,
            7 => Body::FailoverAuthAck,
            8 => Body::MfStart,
            9 => {
                let mut slots = SlotBitmap::new();
                rng.fill_bytes(&mut slots.0[..]);
                Body::Update {
                    config_epoch: rng.gen(),
                    node: NodeId::random(rng),
                    slots,
                }
            }
            10 => Body::Module {
                module_id: rng.gen(),
                kind: rng.gen(),
                payload: bytes(rng, 50),
            },
            _ => Body::Unknown {
                msg_type: rng.gen_range(11..=u16::MAX),
                data: bytes(rng, 50),
            },
        }
    }

    fn random_msg(rng: &mut StdRng) -> Msg {
        Msg {
            header: header(rng),
            body: body(rng),
        }
    }

    #[test]
    fn round_trip() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..5000 {
            let msg = random_msg(&mut rng);
            let buf = encode(&msg);
            assert_eq!(decode(&buf).as_ref(), Ok(&msg));
            let first8: [u8; 8] = buf[..8].try_into().unwrap();
            assert_eq!(frame_len(&first8), Ok(buf.len()));
        }
    }

    #[test]
    fn fixed_lengths_match_redis() {
        // Lengths Redis computes in clusterBuildMessageHdr / clusterSendPing.
        let mut rng = StdRng::seed_from_u64(2);
        let h = header(&mut rng);
        let len = |body: Body| {
            encode(&Msg {
                header: h.clone(),
                body,
            })
            .len()
        };
        assert_eq!(len(Body::Ping(Gossip::default())), 2256);
        assert_eq!(
            len(Body::Fail {
                about: NodeId::NULL
            }),
            2296
        );
        let update = Body::Update {
            config_epoch: 1,
            node: NodeId::NULL,
            slots: SlotBitmap::new(),
        };
        assert_eq!(len(update), 4352);
        let hostname = Gossip {
            entries: vec![],
            extensions: vec![PingExt::Hostname("abcdefg".into())],
        };
        // 8 of header + "abcdefg\0" = 16.
        assert_eq!(len(Body::Pong(hostname)), 2256 + 16);
        let publish = Body::Publish {
            channel: b"ch".to_vec(),
            message: b"hello".to_vec(),
        };
        assert_eq!(len(publish), 2256 + 8 + 7);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(3);
        for i in 0..20000 {
            let buf = if i % 2 == 0 {
                bytes(&mut rng, 5000)
            } else {
                // Mutate a valid message: flip bytes, truncate, extend.
                let mut buf = encode(&random_msg(&mut rng));
                for _ in 0..rng.gen_range(1..6) {
                    let at = rng.gen_range(0..buf.len());
                    buf[at] = rng.gen();
                }
                match rng.gen_range(0..4) {
                    0 => buf.truncate(rng.gen_range(0..buf.len())),
                    1 => buf.extend(bytes(&mut rng, 200)),
                    _ => {}
                }
                buf
            };
            if let Ok(msg) = decode(&buf) {
                // Whatever decodes re-encodes to something that decodes the same.
                assert_eq!(decode(&encode(&msg)), Ok(msg));
            }
        }
    }

    #[test]
    fn redis_rejections() {
        let mut rng = StdRng::seed_from_u64(4);
        let msg = Msg {
            header: header(&mut rng),
            body: Body::Fail {
                about: NodeId::NULL,
            },
        };
        let good = encode(&msg);
        let mut bad_ver = good.clone();
        bad_ver[9] = 2;
        assert_eq!(decode(&bad_ver), Err(WireError::Version(2)));
        let mut bad_sig = good.clone();
        bad_sig[0] = b'X';
        assert_eq!(decode(&bad_sig), Err(WireError::Signature));
        // A FAIL one byte longer, with totlen saying so: wrong length for the type.
        let mut long = good.clone();
        long.push(0);
        let n = long.len() as u32;
        long[4..8].copy_from_slice(&n.to_be_bytes());
        assert!(matches!(
            decode(&long),
            Err(WireError::TypeLength {
                msg_type: 3,
                totlen: 2297,
                expected: 2296
            })
        ));
        // totlen disagreeing with the buffer.
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(WireError::TotalLength { .. })
        ));
        // An extension whose length is not a multiple of 8.
        let ping = Msg {
            header: msg.header.clone(),
            body: Body::Ping(Gossip {
                entries: vec![],
                extensions: vec![PingExt::Hostname("x".into())],
            }),
        };
        let mut buf = encode(&ping);
        buf[HEADER_BYTES + 3] = 12;
        assert_eq!(decode(&buf), Err(WireError::Extension));
        assert_eq!(
            frame_len(b"RCmb\0\0\0\x10"),
            Err(WireError::TotalLength {
                totlen: 16,
                have: 8
            })
        );
    }

    /// Regression: an IP or hostname with a space, a newline or (an IP) a
    /// comma decoded, reached nodes.conf and made the saved file fail to
    /// load (or added lines to it).
    #[test]
    fn texts_nodes_conf_cannot_hold_are_refused() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut ping = |myip: &str, gossip_ip: &str, hostname: &str| {
            let mut h = header(&mut rng);
            h.myip = myip.into();
            let entry = GossipEntry {
                node: NodeId::random(&mut rng),
                ping_sent: 0,
                pong_received: 0,
                ip: gossip_ip.into(),
                port: 1,
                cport: 2,
                flags: 0,
                pport: 0,
            };
            encode(&Msg {
                header: h,
                body: Body::Ping(Gossip {
                    entries: vec![entry],
                    extensions: vec![PingExt::Hostname(hostname.into())],
                }),
            })
        };
        assert!(decode(&ping("10.0.0.1", "::1", "host-1.example")).is_ok());
        let bad = [
            (ping("10.0.0.1\nvars", "::1", "h"), "myip"),
            (ping("1,2", "::1", "h"), "myip"),
            (ping("", "a b", "h"), "gossip ip"),
            (ping("", "1,2", "h"), "gossip ip"),
            (ping("", "", "x\nvars currentEpoch 9"), "hostname"),
            (ping("", "", "x y"), "hostname"),
            (ping("", "", "x\x7f"), "hostname"),
        ];
        for (buf, field) in bad {
            assert_eq!(decode(&buf), Err(WireError::Text(field)));
        }
    }
}
