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

/// The `struct` table (Roberto Ierusalimschy's lua-struct as Redis links
/// it, on x86-64: native little-endian, `long`/`size_t` of 8 bytes, at
/// most 8-byte alignment, integers up to 32 bytes).
pub fn structlib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", lua.create_function(struct_pack)?)?;
    t.raw_set("unpack", lua.create_function(struct_unpack)?)?;
    t.raw_set("size", lua.create_function(struct_size)?)?;
    Ok(t)
}

const MAX_INT_SIZE: usize = 32;
const MAX_ALIGN: usize = 8;

fn rt(msg: String) -> mlua::Error {
    mlua::Error::RuntimeError(msg)
}

fn bad_arg(n: usize, func: &str, msg: &str) -> mlua::Error {
    rt(format!("bad argument #{n} to '{func}' ({msg})"))
}

/// The format cursor and its state (`Header`).
struct Fmt<'a> {
    f: &'a [u8],
    at: usize,
    little: bool,
    align: usize,
}

impl Fmt<'_> {
    fn num(&mut self, default: usize) -> mlua::Result<usize> {
        if !self.f.get(self.at).is_some_and(|c| c.is_ascii_digit()) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(c) = self.f.get(self.at).filter(|c| c.is_ascii_digit()) {
            let d = (c - b'0') as usize;
            if a > (i32::MAX as usize) / 10 || a * 10 > i32::MAX as usize - d {
                return Err(rt("integral size overflow".into()));
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a)
    }

    /// `optsize`.
    fn size(&mut self, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.num(1)?,
            b'i' | b'I' => {
                let sz = self.num(4)?;
                if sz > MAX_INT_SIZE {
                    return Err(rt(format!(
                        "integral size {sz} is larger than limit of {MAX_INT_SIZE}"
                    )));
                }
                sz
            }
            _ => 0,
        })
    }

    fn to_align(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size - (len & (size - 1))) & (size - 1)
    }

    /// `controloptions`.
    fn control(&mut self, opt: u8, func: &str) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => self.little = false,
            b'<' => self.little = true,
            b'!' => {
                let a = self.num(MAX_ALIGN)?;
                if a == 0 || a & (a - 1) != 0 {
                    return Err(rt(format!("alignment {a} is not a power of 2")));
                }
                self.align = a;
            }
            other => {
                return Err(bad_arg(
                    1,
                    func,
                    &format!("invalid format option '{}'", other as char),
                ))
            }
        }
        Ok(())
    }
}

fn fmt_of(v: Option<&Value>, func: &str) -> mlua::Result<Vec<u8>> {
    match v {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Number(n)) => Ok(fmt_g(*n, 14).into_bytes()),
        Some(Value::Integer(n)) => Ok(n.to_string().into_bytes()),
        other => Err(bad_arg(
            1,
            func,
            &format!(
                "string expected, got {}",
                other.map_or("no value", type_name)
            ),
        )),
    }
}

fn number_arg(args: &MultiValue, i: usize, func: &str) -> mlua::Result<f64> {
    match args.get(i) {
        Some(Value::Number(n)) => Ok(*n),
        Some(Value::Integer(n)) => Ok(*n as f64),
        Some(Value::String(s)) => std::str::from_utf8(&s.as_bytes())
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
            .ok_or_else(|| bad_arg(i + 1, func, "number expected, got string")),
        other => Err(bad_arg(
            i + 1,
            func,
            &format!(
                "number expected, got {}",
                other.map_or("no value", type_name)
            ),
        )),
    }
}

fn struct_pack(lua: &Lua, args: MultiValue) -> mlua::Result<mlua::LuaString> {
    let f = fmt_of(args.front(), "pack")?;
    let mut h = Fmt {
        f: &f,
        at: 0,
        little: true,
        align: 1,
    };
    let mut out = Vec::new();
    let mut arg = 1usize;
    while h.at < h.f.len() {
        let opt = h.f[h.at];
        h.at += 1;
        let mut size = h.size(opt)?;
        let pad = h.to_align(out.len(), opt, size);
        out.extend(std::iter::repeat_n(0u8, pad));
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = number_arg(&args, arg, "pack")?;
                arg += 1;
                let mut v: u64 = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                let mut b = vec![0u8; size];
                for i in 0..size {
                    let at = if h.little { i } else { size - 1 - i };
                    b[at] = (v & 0xff) as u8;
                    v = v.checked_shr(8).unwrap_or(0);
                }
                out.extend_from_slice(&b);
            }
            b'x' => out.push(0),
            b'f' => {
                let x = number_arg(&args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    x.to_le_bytes()
                } else {
                    x.to_be_bytes()
                });
            }
            b'd' => {
                let x = number_arg(&args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    x.to_le_bytes()
                } else {
                    x.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = match args.get(arg) {
                    Some(Value::String(s)) => s.as_bytes().to_vec(),
                    Some(Value::Number(n)) => fmt_g(*n, 14).into_bytes(),
                    Some(Value::Integer(n)) => n.to_string().into_bytes(),
                    other => {
                        return Err(bad_arg(
                            arg + 1,
                            "pack",
                            &format!(
                                "string expected, got {}",
                                other.map_or("no value", type_name)
                            ),
                        ))
                    }
                };
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(bad_arg(arg + 1, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => h.control(opt, "pack")?,
        }
    }
    lua.create_string(&out)
}

fn struct_unpack(lua: &Lua, args: MultiValue) -> mlua::Result<MultiValue> {
    let f = fmt_of(args.front(), "unpack")?;
    let data = match args.get(1) {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(Value::Number(n)) => fmt_g(*n, 14).into_bytes(),
        other => {
            return Err(bad_arg(
                2,
                "unpack",
                &format!(
                    "string expected, got {}",
                    other.map_or("no value", type_name)
                ),
            ))
        }
    };
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1.0,
        _ => number_arg(&args, 2, "unpack")?,
    };
    if start < 1.0 {
        return Err(bad_arg(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = start as usize - 1;
    let ld = data.len();
    let mut h = Fmt {
        f: &f,
        at: 0,
        little: true,
        align: 1,
    };
    let mut out: Vec<Value> = Vec::new();
    while h.at < h.f.len() {
        let opt = h.f[h.at];
        h.at += 1;
        let mut size = h.size(opt)?;
        pos += h.to_align(pos, opt, size);
        if size > ld || pos > ld - size {
            return Err(bad_arg(2, "unpack", "data string too short"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let bytes = &data[pos..pos + size];
                let mut l: u64 = 0;
                for i in 0..size {
                    let b = if h.little {
                        bytes[size - 1 - i]
                    } else {
                        bytes[i]
                    };
                    l = l.checked_shl(8).unwrap_or(0) | b as u64;
                }
                let v = if opt.is_ascii_lowercase() {
                    let mask = if size * 8 >= 64 {
                        0
                    } else {
                        u64::MAX << (size * 8 - 1)
                    };
                    let l = if size * 8 < 64 && l & mask != 0 {
                        l | mask
                    } else {
                        l
                    };
                    l as i64 as f64
                } else {
                    l as f64
                };
                out.push(Value::Number(v));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let x = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(x as f64));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let x = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(x));
            }
            b'c' => {
                if size == 0 {
                    let Some(Value::Number(n)) = out.pop() else {
                        return Err(rt("format 'c0' needs a previous size".into()));
                    };
                    size = n as usize;
                    if size > ld || pos > ld - size {
                        return Err(bad_arg(2, "unpack", "data string too short"));
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(e) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(rt("unfinished string in data".into()));
                };
                out.push(Value::String(lua.create_string(&data[pos..pos + e])?));
                size = e + 1;
            }
            _ => h.control(opt, "unpack")?,
        }
        pos += size;
    }
    out.push(Value::Number((pos + 1) as f64));
    Ok(MultiValue::from_iter(out))
}

fn struct_size(_: &Lua, args: MultiValue) -> mlua::Result<f64> {
    let f = fmt_of(args.front(), "size")?;
    let mut h = Fmt {
        f: &f,
        at: 0,
        little: true,
        align: 1,
    };
    let mut pos = 0usize;
    while h.at < h.f.len() {
        let opt = h.f[h.at];
        h.at += 1;
        let size = h.size(opt)?;
        pos += h.to_align(pos, opt, size);
        if opt == b's' {
            return Err(bad_arg(1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(bad_arg(1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            h.control(opt, "size")?;
        }
        pos += size;
    }
    Ok(pos as f64)
}
