//! Redis 7.0's RDB format (version 10), both ways: values (the DUMP
//! payload and each key of a snapshot) and whole files.
//!
//! slotd writes the plain forms every Redis since 2.x reads (strings with
//! Redis's integer and LZF encodings, `LIST`, `SET`, `HASH`, `ZSET_2`), and
//! reads every form Redis 7.0 and older write: listpack hashes and sorted
//! sets, quicklists of listpacks or ziplists, ziplists, intsets, zipmaps.
//! Streams are written as Redis 7.0 writes them (`STREAM_LISTPACKS_2`, the
//! nodes' listpacks as they are) and read in both stream forms, every node
//! checked deeply. Modules and functions are refused with a clear error.
//! Reading never trusts the input: every length is checked against what
//! is left, and damage is an [`Error`], never a panic.

mod blobs;
mod lzf;
pub mod read;
pub mod write;

/// The RDB version slotd writes (Redis 7.0's).
pub const VERSION: u16 = 10;

pub(crate) const TYPE_STRING: u8 = 0;
pub(crate) const TYPE_LIST: u8 = 1;
pub(crate) const TYPE_SET: u8 = 2;
pub(crate) const TYPE_ZSET: u8 = 3;
pub(crate) const TYPE_HASH: u8 = 4;
pub(crate) const TYPE_ZSET_2: u8 = 5;
pub(crate) const TYPE_MODULE: u8 = 6;
pub(crate) const TYPE_MODULE_2: u8 = 7;
pub(crate) const TYPE_HASH_ZIPMAP: u8 = 9;
pub(crate) const TYPE_LIST_ZIPLIST: u8 = 10;
pub(crate) const TYPE_SET_INTSET: u8 = 11;
pub(crate) const TYPE_ZSET_ZIPLIST: u8 = 12;
pub(crate) const TYPE_HASH_ZIPLIST: u8 = 13;
pub(crate) const TYPE_LIST_QUICKLIST: u8 = 14;
pub(crate) const TYPE_STREAM_LISTPACKS: u8 = 15;
pub(crate) const TYPE_HASH_LISTPACK: u8 = 16;
pub(crate) const TYPE_ZSET_LISTPACK: u8 = 17;
pub(crate) const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub(crate) const TYPE_STREAM_LISTPACKS_2: u8 = 19;

pub(crate) const OP_FUNCTION2: u8 = 245;
pub(crate) const OP_FUNCTION: u8 = 246;
pub(crate) const OP_MODULE_AUX: u8 = 247;
pub(crate) const OP_IDLE: u8 = 248;
pub(crate) const OP_FREQ: u8 = 249;
pub(crate) const OP_AUX: u8 = 250;
pub(crate) const OP_RESIZEDB: u8 = 251;
pub(crate) const OP_EXPIRETIME_MS: u8 = 252;
pub(crate) const OP_EXPIRETIME: u8 = 253;
pub(crate) const OP_SELECTDB: u8 = 254;
pub(crate) const OP_EOF: u8 = 255;

/// The message of an [`Error`] where the input ends before what it
/// announces (a truncated file reports this, wherever it was cut).
pub const SHORT_READ: &str = "unexpected end of data";

/// Why an RDB file or payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What was wrong, for the log or the client.
    pub msg: String,
    /// Where in the input (bytes from its start).
    pub offset: usize,
    /// True for a collection stored empty, which Redis skips when loading
    /// a file (with a warning) and refuses in RESTORE.
    pub empty_key: bool,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.msg, self.offset)
    }
}

/// The running CRC64 of [`crc64`].
pub type Crc64 = crc_fast::Digest;

/// Redis's CRC64 (Jones polynomial, reflected), which RDB files and DUMP
/// payloads end with. By carry-less multiplication where the CPU has it
/// (`crc-fast`): 10x the `crc` crate's slice-by-16 tables here, which were
/// a tenth of a snapshot's CPU (an image is checksummed whole).
pub fn crc64() -> Crc64 {
    crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis)
}

/// The DUMP payload of `value`: its RDB type and body, the RDB version
/// (2 bytes, little-endian) and the CRC64 of all that (8 bytes,
/// little-endian), as Redis's `createDumpPayload` lays it out.
pub fn dump(value: &crate::value::Value, compress: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write::value(&mut out, value, compress);
    seal_dump(&mut out);
    out
}

/// Ends a DUMP-style payload: the RDB version and the CRC64 of it all.
pub fn seal_dump(out: &mut Vec<u8>) {
    out.extend_from_slice(&VERSION.to_le_bytes());
    let mut crc = crc64();
    crc.update(out);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
}

/// The body of a DUMP-style payload whose version this server reads and
/// whose CRC64 matches (`verifyDumpPayload`).
pub fn open_dump(payload: &[u8]) -> Option<&[u8]> {
    if payload.len() < 10 {
        return None;
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > VERSION {
        return None;
    }
    let mut crc = crc64();
    crc.update(&payload[..payload.len() - 8]);
    (crc.finalize().to_le_bytes() == footer[2..10]).then_some(body)
}

/// The value of a DUMP payload, checked as Redis's `verifyDumpPayload`
/// does (a version this server reads, a matching CRC64) and then decoded
/// with the encodings `lim` asks for. `None` for a payload whose version
/// or checksum is wrong (Redis's "DUMP payload version or checksum are
/// wrong"); `Some(Err)` for one that does not decode ("Bad data format").
/// Bytes between the value and the footer are not looked at, as Redis's
/// RESTORE does not.
pub fn undump(
    payload: &[u8],
    lim: &crate::value::EncodingLimits,
) -> Option<Result<crate::value::Value, Error>> {
    let body = open_dump(payload)?;
    Some(read::typed_value(&mut read::Reader::new(body), lim))
}

#[cfg(test)]
mod tests;
