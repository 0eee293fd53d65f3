//! The C libraries Redis links into its Lua, written here in Rust with
//! their behaviour and error texts: `cjson` (lua-cjson 2.1.0 with Redis's
//! defaults) and `cmsgpack` (lua-cmsgpack 0.4.0). `bit` is in `mod.rs`.

use super::convert::fmt_g;
use mlua::{LightUserData, Lua, MultiValue, Table, Value, Variadic};

/// `cjson.null`: a light userdata holding NULL, as lua-cjson's.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(n) => Some(*n as f64),
        _ => None,
    }
}

/// The `cjson` table.
pub fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "encode",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(arg_error("encode", "expected 1 argument"));
            }
            let mut out = Vec::new();
            encode(&args[0], 0, &mut out).map_err(mlua::Error::RuntimeError)?;
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(arg_error("decode", "expected 1 argument"));
            }
            let bytes = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Number(n) => fmt_g(*n, 14).into_bytes(),
                Value::Integer(n) => n.to_string().into_bytes(),
                other => {
                    return Err(arg_error(
                        "decode",
                        &format!("string expected, got {}", type_name(other)),
                    ))
                }
            };
            decode(lua, &bytes).map_err(mlua::Error::RuntimeError)
        })?,
    )?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    // The configuration functions answer Redis's defaults; changing them
    // is refused (each core has its own Lua state, so a change would not
    // reach them all).
    for (name, current) in [
        ("encode_sparse_array", "false 2 10"),
        ("encode_max_depth", "1000"),
        ("decode_max_depth", "1000"),
        ("encode_number_precision", "14"),
        ("encode_keep_buffer", "true"),
        ("encode_invalid_numbers", "false"),
        ("decode_invalid_numbers", "true"),
    ] {
        let vals: Vec<Value> = current
            .split(' ')
            .map(|w| match w {
                "true" => Value::Boolean(true),
                "false" => Value::Boolean(false),
                n => Value::Number(n.parse().unwrap_or(0.0)),
            })
            .collect();
        t.raw_set(
            name,
            lua.create_function(move |_, args: MultiValue| {
                if args.is_empty() {
                    Ok(Variadic::from_iter(vals.clone()))
                } else {
                    Err(mlua::Error::RuntimeError(format!(
                        "cjson.{name}: slotd keeps cjson's configuration at Redis's defaults"
                    )))
                }
            })?,
        )?;
    }
    Ok(t)
}

fn arg_error(func: &str, msg: &str) -> mlua::Error {
    mlua::Error::RuntimeError(format!("bad argument #1 to '{func}' ({msg})"))
}

const MAX_DEPTH: usize = 1000;

fn encode(v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Number(_) | Value::Integer(_) => {
            let n = number_of(v).unwrap_or(0.0);
            if n.is_nan() || n.is_infinite() {
                return Err("Cannot serialise number: must not be NaN or Inf".into());
            }
            out.extend_from_slice(fmt_g(n, 14).as_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > MAX_DEPTH {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(t)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                        encode(&item, depth, out)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.pairs::<Value, Value>() {
                        let (k, val) = pair.map_err(|e| e.to_string())?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::String(s) => {
                                encode_string(&s.as_bytes(), out);
                                out.push(b':');
                            }
                            Value::Number(_) | Value::Integer(_) => {
                                out.push(b'"');
                                encode(&k, depth, out)?;
                                out.extend_from_slice(b"\":");
                            }
                            other => {
                                return Err(format!(
                                    "Cannot serialise {}: table key must be a number or string",
                                    type_name(other)
                                ))
                            }
                        }
                        encode(&val, depth, out)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                type_name(other)
            ))
        }
    }
    Ok(())
}

/// lua-cjson's `lua_array_length`: `Some(max index)` for a table whose
/// keys are all integers ≥ 1 (an excessively sparse one is an error, as
/// with `encode_sparse_array(false, 2, 10)`), `None` for an object.
fn array_length(t: &Table) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0f64, 0f64);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        match number_of(&k) {
            Some(n) if n != 0.0 && n.floor() == n && n >= 1.0 => {
                max = max.max(n);
                items += 1.0;
            }
            _ => return Ok(None),
        }
    }
    if max > items * 2.0 && max > 10.0 {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(Some(max as usize))
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// A JSON token as lua-cjson names them in errors.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    fn name(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str(_) => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    /// Where a string's error was found (lua-cjson reports that place).
    err_at: Option<usize>,
}

impl Parser<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.pos).copied().unwrap_or(0)
    }

    /// The next token and the index it starts at.
    fn next(&mut self) -> (Tok, usize) {
        while matches!(self.peek(), b' ' | b'\t' | b'\r' | b'\n') {
            self.pos += 1;
        }
        let at = self.pos;
        let c = self.peek();
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            0 => return (Tok::End, at),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, at);
        }
        let rest = &self.s[self.pos..];
        let tok = match c {
            b'"' => {
                let t = self.string();
                if let (Tok::Error(_), Some(e)) = (&t, self.err_at.take()) {
                    return (t, e);
                }
                t
            }
            b'-' | b'0'..=b'9' => self.number(),
            b'i' | b'I' | b'n' | b'N'
                if !rest.starts_with(b"null") && matches!(self.number(), Tok::Num(_)) =>
            {
                // `decode_invalid_numbers`: inf and nan, as strtod reads them.
                self.pos = at;
                self.number()
            }
            _ if rest.starts_with(b"true") => {
                self.pos += 4;
                Tok::Bool(true)
            }
            _ if rest.starts_with(b"false") => {
                self.pos += 5;
                Tok::Bool(false)
            }
            _ if rest.starts_with(b"null") => {
                self.pos += 4;
                Tok::Null
            }
            _ => Tok::Error("invalid token"),
        };
        (tok, at)
    }

    /// A number as C's strtod reads it (decimal, hex, inf, nan: Redis's
    /// lua-cjson decodes invalid numbers too).
    fn number(&mut self) -> Tok {
        let rest = &self.s[self.pos..];
        let neg = rest.first() == Some(&b'-');
        let signed = usize::from(matches!(rest.first(), Some(b'-' | b'+')));
        let body = &rest[signed..];
        let lower: Vec<u8> = body
            .iter()
            .take(8)
            .map(|b| b.to_ascii_lowercase())
            .collect();
        let sign = if neg { -1.0 } else { 1.0 };
        if lower.starts_with(b"inf") {
            let len = if lower.starts_with(b"infinity") { 8 } else { 3 };
            self.pos += signed + len;
            return Tok::Num(sign * f64::INFINITY);
        }
        if lower.starts_with(b"nan") {
            self.pos += signed + 3;
            return Tok::Num(f64::NAN);
        }
        if lower.starts_with(b"0x") {
            let digits = body[2..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if digits > 0 {
                let v = body[2..2 + digits].iter().fold(0f64, |a, &b| {
                    a * 16.0 + (b as char).to_digit(16).unwrap_or(0) as f64
                });
                self.pos += signed + 2 + digits;
                return Tok::Num(sign * v);
            }
        }
        let mut i = signed;
        let digits = |i: &mut usize| {
            let s = *i;
            while rest.get(*i).is_some_and(|b| b.is_ascii_digit()) {
                *i += 1;
            }
            *i > s
        };
        let mut any = digits(&mut i);
        if rest.get(i) == Some(&b'.') {
            let mut j = i + 1;
            if digits(&mut j) || any {
                any = true;
                i = j;
            }
        }
        if !any {
            return Tok::Error("invalid number");
        }
        if matches!(rest.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(rest.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if digits(&mut j) {
                i = j;
            }
        }
        let text = std::str::from_utf8(&rest[..i]).unwrap_or("0");
        match text.parse::<f64>() {
            Ok(n) => {
                self.pos += i;
                Tok::Num(n)
            }
            Err(_) => Tok::Error("invalid number"),
        }
    }

    fn string(&mut self) -> Tok {
        let mut out = Vec::new();
        let mut i = self.pos + 1;
        loop {
            let Some(&c) = self.s.get(i) else {
                self.err_at = Some(i);
                return Tok::Error("unexpected end of string");
            };
            match c {
                b'"' => break,
                0 => {
                    self.err_at = Some(i);
                    return Tok::Error("unexpected end of string");
                }
                b'\\' => {
                    self.err_at = Some(i);
                    let Some(&e) = self.s.get(i + 1) else {
                        return Tok::Error("unexpected end of string");
                    };
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b't' => out.push(b'\t'),
                        b'n' => out.push(b'\n'),
                        b'f' => out.push(12),
                        b'r' => out.push(b'\r'),
                        b'u' => match self.unicode(i, &mut out) {
                            Some(len) => {
                                self.err_at = None;
                                i += len;
                                continue;
                            }
                            None => return Tok::Error("invalid unicode escape code"),
                        },
                        _ => return Tok::Error("invalid escape code"),
                    }
                    self.err_at = None;
                    i += 2;
                    continue;
                }
                c => out.push(c),
            }
            i += 1;
        }
        self.pos = i + 1;
        Tok::Str(out)
    }

    /// Decodes `\uXXXX` (and a surrogate pair) at `i` into UTF-8; returns
    /// how many bytes of input it used.
    fn unicode(&self, i: usize, out: &mut Vec<u8>) -> Option<usize> {
        let hex = |at: usize| -> Option<u32> {
            let h = self.s.get(at..at + 4)?;
            u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
        };
        let mut cp = hex(i + 2)?;
        let mut used = 6;
        if (0xDC00..=0xDFFF).contains(&cp) {
            return None;
        }
        if (0xD800..=0xDBFF).contains(&cp) {
            if self.s.get(i + 6..i + 8) != Some(b"\\u") {
                return None;
            }
            let low = hex(i + 8)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return None;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            used = 12;
        }
        let ch = char::from_u32(cp)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        Some(used)
    }

    fn error(&self, expected: &str, found: &Tok, at: usize) -> String {
        format!(
            "Expected {expected} but found {} at character {}",
            found.name(),
            at + 1
        )
    }

    fn value(&mut self, lua: &Lua, tok: Tok, at: usize) -> Result<Value, String> {
        let lerr = |e: mlua::Error| e.to_string();
        match tok {
            Tok::Str(s) => Ok(Value::String(lua.create_string(&s).map_err(lerr)?)),
            Tok::Num(n) => Ok(Value::Number(n)),
            Tok::Bool(b) => Ok(Value::Boolean(b)),
            Tok::Null => Ok(null()),
            Tok::ObjBegin => {
                self.descend(at)?;
                let t = lua.create_table().map_err(lerr)?;
                let (mut tok, mut at) = self.next();
                if tok == Tok::ObjEnd {
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                loop {
                    let Tok::Str(key) = tok else {
                        return Err(self.error("object key string", &tok, at));
                    };
                    let (colon, cat) = self.next();
                    if colon != Tok::Colon {
                        return Err(self.error("colon", &colon, cat));
                    }
                    let (vt, vat) = self.next();
                    let v = self.value(lua, vt, vat)?;
                    t.raw_set(lua.create_string(&key).map_err(lerr)?, v)
                        .map_err(lerr)?;
                    let (sep, sat) = self.next();
                    match sep {
                        Tok::ObjEnd => break,
                        Tok::Comma => {}
                        other => return Err(self.error("comma or object end", &other, sat)),
                    }
                    (tok, at) = self.next();
                }
                self.depth -= 1;
                Ok(Value::Table(t))
            }
            Tok::ArrBegin => {
                self.descend(at)?;
                let t = lua.create_table().map_err(lerr)?;
                let (mut tok, mut at) = self.next();
                if tok == Tok::ArrEnd {
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                let mut i = 1;
                loop {
                    let v = self.value(lua, tok, at)?;
                    t.raw_set(i, v).map_err(lerr)?;
                    i += 1;
                    let (sep, sat) = self.next();
                    match sep {
                        Tok::ArrEnd => break,
                        Tok::Comma => {}
                        other => return Err(self.error("comma or array end", &other, sat)),
                    }
                    (tok, at) = self.next();
                }
                self.depth -= 1;
                Ok(Value::Table(t))
            }
            other => Err(self.error("value", &other, at)),
        }
    }

    fn descend(&mut self, at: usize) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth,
                at + 1
            ));
        }
        Ok(())
    }
}

fn decode(lua: &Lua, s: &[u8]) -> Result<Value, String> {
    if s.len() >= 2 && (s[0] == 0 || s[1] == 0) {
        return Err("JSON parser does not support UTF-16 or UTF-32".into());
    }
    let mut p = Parser {
        s,
        pos: 0,
        depth: 0,
        err_at: None,
    };
    let (tok, at) = p.next();
    let v = p.value(lua, tok, at)?;
    let (end, at) = p.next();
    if end != Tok::End {
        return Err(p.error("the end", &end, at));
    }
    Ok(v)
}

/// The `cmsgpack` table.
pub fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            if args.is_empty() {
                return Err(mlua::Error::RuntimeError(
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)".into(),
                ));
            }
            let mut out = Vec::new();
            for a in args.iter() {
                pack(a, 0, &mut out);
            }
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::LuaString| unpack_all(lua, &s.as_bytes(), 0, 0))?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (mlua::LuaString, Option<i64>)| {
            unpack_all(lua, &s.as_bytes(), 1, offset.unwrap_or(0))
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(
            |lua, (s, limit, offset): (mlua::LuaString, i64, Option<i64>)| {
                unpack_all(lua, &s.as_bytes(), limit, offset.unwrap_or(0))
            },
        )?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

const MAX_NESTING: usize = 16;

fn pack(v: &Value, level: usize, out: &mut Vec<u8>) {
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            let n = b.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else if n <= 0xff {
                out.extend_from_slice(&[0xd9, n as u8]);
            } else if n <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Number(_) | Value::Integer(_) => {
            let n = number_of(v).unwrap_or(0.0);
            if n.is_finite() && n == (n as i64) as f64 && n.fract() == 0.0 {
                pack_int(n as i64, out);
            } else {
                let f = n as f32;
                if f as f64 == n || (n.is_nan() && f.is_nan()) {
                    out.push(0xca);
                    out.extend_from_slice(&f.to_be_bytes());
                } else {
                    out.push(0xcb);
                    out.extend_from_slice(&n.to_be_bytes());
                }
            }
        }
        Value::Table(t) if level < MAX_NESTING => {
            let mut count = 0usize;
            let mut max = 0f64;
            let mut array = true;
            for (k, _) in t.pairs::<Value, Value>().flatten() {
                match number_of(&k) {
                    Some(n) if n > 0.0 && n == (n as i32) as f64 => {
                        max = max.max(n);
                        count += 1;
                    }
                    _ => {
                        array = false;
                        break;
                    }
                }
            }
            if array && max as usize == count {
                let len = t.raw_len();
                header(out, len, 0x90, 0xdc, 0xdd);
                for i in 1..=len {
                    let item: Value = t.raw_get(i).unwrap_or(Value::Nil);
                    pack(&item, level + 1, out);
                }
            } else {
                let pairs: Vec<(Value, Value)> = t.pairs::<Value, Value>().flatten().collect();
                header(out, pairs.len(), 0x80, 0xde, 0xdf);
                for (k, val) in &pairs {
                    pack(k, level + 1, out);
                    pack(val, level + 1, out);
                }
            }
        }
        _ => out.push(0xc0),
    }
}

fn header(out: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn pack_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

enum Unpack {
    Eof,
    BadFormat,
}

fn unpack_all(lua: &Lua, s: &[u8], limit: i64, offset: i64) -> mlua::Result<MultiValue> {
    let len = s.len() as i64;
    if offset < 0 || limit < 0 {
        return Err(mlua::Error::RuntimeError(format!(
            "Invalid request to unpack with offset of {offset} and limit of {len}."
        )));
    }
    if offset > len {
        return Err(mlua::Error::RuntimeError(format!(
            "Start offset {offset} greater than input length {len}."
        )));
    }
    let all = limit == 0 && offset == 0;
    let limit = if all { i64::MAX } else { limit };
    let mut cur = &s[offset as usize..];
    let mut out = Vec::new();
    while !cur.is_empty() && (out.len() as i64) < limit {
        match unpack(lua, &mut cur) {
            Ok(v) => out.push(v),
            Err(Unpack::Eof) => {
                return Err(mlua::Error::RuntimeError("Missing bytes in input.".into()))
            }
            Err(Unpack::BadFormat) => {
                return Err(mlua::Error::RuntimeError(
                    "Bad data format in input.".into(),
                ))
            }
        }
    }
    if !all {
        let next = if cur.is_empty() {
            -1
        } else {
            len - cur.len() as i64
        };
        out.insert(0, Value::Number(next as f64));
    }
    Ok(MultiValue::from_iter(out))
}

fn take<'a>(cur: &mut &'a [u8], n: usize) -> Result<&'a [u8], Unpack> {
    if cur.len() < n {
        return Err(Unpack::Eof);
    }
    let (a, b) = cur.split_at(n);
    *cur = b;
    Ok(a)
}

fn be(cur: &mut &[u8], n: usize) -> Result<u64, Unpack> {
    Ok(take(cur, n)?.iter().fold(0u64, |a, &b| (a << 8) | b as u64))
}

fn unpack(lua: &Lua, cur: &mut &[u8]) -> Result<Value, Unpack> {
    let lerr = |_: mlua::Error| Unpack::BadFormat;
    let c = take(cur, 1)?[0];
    let str_of = |lua: &Lua, cur: &mut &[u8], n: usize| -> Result<Value, Unpack> {
        let b = take(cur, n)?;
        Ok(Value::String(lua.create_string(b).map_err(lerr)?))
    };
    Ok(match c {
        0x00..=0x7f => Value::Number(c as f64),
        0x80..=0x8f => map(lua, cur, (c & 0x0f) as usize)?,
        0x90..=0x9f => array(lua, cur, (c & 0x0f) as usize)?,
        0xa0..=0xbf => str_of(lua, cur, (c & 0x1f) as usize)?,
        0xc0 => Value::Nil,
        0xc2 => Value::Boolean(false),
        0xc3 => Value::Boolean(true),
        0xc4 | 0xd9 => {
            let n = be(cur, 1)? as usize;
            str_of(lua, cur, n)?
        }
        0xc5 | 0xda => {
            let n = be(cur, 2)? as usize;
            str_of(lua, cur, n)?
        }
        0xc6 | 0xdb => {
            let n = be(cur, 4)? as usize;
            str_of(lua, cur, n)?
        }
        0xca => Value::Number(f32::from_bits(be(cur, 4)? as u32) as f64),
        0xcb => Value::Number(f64::from_bits(be(cur, 8)?)),
        0xcc => Value::Number(be(cur, 1)? as f64),
        0xcd => Value::Number(be(cur, 2)? as f64),
        0xce => Value::Number(be(cur, 4)? as f64),
        0xcf => Value::Number(be(cur, 8)? as f64),
        0xd0 => Value::Number(be(cur, 1)? as u8 as i8 as f64),
        0xd1 => Value::Number(be(cur, 2)? as u16 as i16 as f64),
        0xd2 => Value::Number(be(cur, 4)? as u32 as i32 as f64),
        0xd3 => Value::Number(be(cur, 8)? as i64 as f64),
        0xdc => {
            let n = be(cur, 2)? as usize;
            array(lua, cur, n)?
        }
        0xdd => {
            let n = be(cur, 4)? as usize;
            array(lua, cur, n)?
        }
        0xde => {
            let n = be(cur, 2)? as usize;
            map(lua, cur, n)?
        }
        0xdf => {
            let n = be(cur, 4)? as usize;
            map(lua, cur, n)?
        }
        0xe0..=0xff => Value::Number(c as i8 as f64),
        _ => return Err(Unpack::BadFormat),
    })
}

fn array(lua: &Lua, cur: &mut &[u8], n: usize) -> Result<Value, Unpack> {
    let t = lua
        .create_table_with_capacity(n.min(cur.len()), 0)
        .map_err(|_| Unpack::BadFormat)?;
    for i in 1..=n {
        let v = unpack(lua, cur)?;
        t.raw_set(i, v).map_err(|_| Unpack::BadFormat)?;
    }
    Ok(Value::Table(t))
}

fn map(lua: &Lua, cur: &mut &[u8], n: usize) -> Result<Value, Unpack> {
    let t = lua.create_table().map_err(|_| Unpack::BadFormat)?;
    for _ in 0..n {
        let k = unpack(lua, cur)?;
        let v = unpack(lua, cur)?;
        if !matches!(k, Value::Nil) {
            t.raw_set(k, v).map_err(|_| Unpack::BadFormat)?;
        }
    }
    Ok(Value::Table(t))
}
