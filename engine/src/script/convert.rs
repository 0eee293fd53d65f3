//! Conversions between command replies and Lua values, as Redis 7.0's
//! `redisProtocolToLuaType` and `luaReplyToRedisReply` do them, for the
//! RESP2 and RESP3 modes a script chooses with `redis.setresp`.

use crate::reply::{fmt_g17, Reply};
use bytes::Bytes;
use mlua::{Lua, Table, Value};

/// A command's reply as the script sees it (`resp3`: `redis.setresp(3)`).
pub fn reply_to_lua(lua: &Lua, reply: &Reply, resp3: bool) -> mlua::Result<Value> {
    Ok(match reply {
        Reply::Ok => Value::Table(single(lua, "ok", Value::String(lua.create_string("OK")?))?),
        Reply::Status(s) => {
            Value::Table(single(lua, "ok", Value::String(lua.create_string(&**s)?))?)
        }
        Reply::Error(e) => Value::Table(error_table(lua, e)?),
        Reply::Int(n) => Value::Number(*n as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(&b[..])?),
        Reply::Verbatim(b) if !resp3 => Value::String(lua.create_string(&b[..])?),
        Reply::Verbatim(b) => {
            let inner = lua.create_table_with_capacity(0, 2)?;
            inner.raw_set("format", "txt")?;
            inner.raw_set("string", lua.create_string(&b[..])?)?;
            Value::Table(single(lua, "verbatim_string", Value::Table(inner))?)
        }
        Reply::Nil | Reply::NilArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Reply::Array(items) | Reply::Push(items) => array(lua, items.iter(), resp3)?,
        Reply::Set(items) if resp3 => {
            let set = lua.create_table_with_capacity(0, items.len())?;
            for i in items {
                set.raw_set(reply_to_lua(lua, i, true)?, true)?;
            }
            Value::Table(single(lua, "set", Value::Table(set))?)
        }
        Reply::Set(items) => array(lua, items.iter(), false)?,
        Reply::Map(pairs) | Reply::Keyed(pairs) if resp3 => {
            let map = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                map.raw_set(reply_to_lua(lua, k, true)?, reply_to_lua(lua, v, true)?)?;
            }
            Value::Table(single(lua, "map", Value::Table(map))?)
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) if !resp3 => {
            let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            let mut i = 1;
            for (k, v) in pairs {
                t.raw_set(i, reply_to_lua(lua, k, false)?)?;
                t.raw_set(i + 1, reply_to_lua(lua, v, false)?)?;
                i += 2;
            }
            Value::Table(t)
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) | Reply::Keyed(pairs) => {
            let t = lua.create_table_with_capacity(pairs.len(), 0)?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                let pair = lua.create_table_with_capacity(2, 0)?;
                pair.raw_set(1, reply_to_lua(lua, k, true)?)?;
                pair.raw_set(2, reply_to_lua(lua, v, true)?)?;
                t.raw_set(i + 1, pair)?;
            }
            Value::Table(t)
        }
        Reply::Double(d) if resp3 => Value::Table(single(lua, "double", Value::Number(*d))?),
        Reply::Double(d) => Value::String(lua.create_string(fmt_g17(*d))?),
        // GEOPOS's coordinates: a double in RESP3, else the bulk text.
        Reply::HumanDouble(d) if resp3 => Value::Table(single(lua, "double", Value::Number(*d))?),
        Reply::HumanDouble(d) => Value::String(lua.create_string(crate::ldouble::human(*d))?),
        Reply::Bool(b) if resp3 => Value::Boolean(*b),
        Reply::Bool(b) => Value::Number(if *b { 1.0 } else { 0.0 }),
    })
}

fn array<'a>(
    lua: &Lua,
    items: impl ExactSizeIterator<Item = &'a Reply>,
    resp3: bool,
) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, r) in items.enumerate() {
        t.raw_set(i + 1, reply_to_lua(lua, r, resp3)?)?;
    }
    Ok(Value::Table(t))
}

fn single(lua: &Lua, key: &str, v: Value) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(key, v)?;
    Ok(t)
}

/// The field Redis 7.0 sets in the error table of a command's error reply
/// (`redisProtocolToLuaType_Error`): the command counted that error in
/// INFO errorstats, so a script's reply that carries it on (raised by
/// `redis.call`, or the table `redis.pcall` gave, returned) does not count
/// it again. Scripts see it, as in Redis; slotd sets it where the command
/// that answered counted its error ([`super::Backend::error_counted`]),
/// which a command run on keys gathered from several cores does not.
pub const COUNTED_FIELD: &str = "ignore_error_stats_update";

/// Whether `v`, a script's return value or raised error, is an error table
/// of a command's error reply ([`COUNTED_FIELD`]).
pub fn error_counted(v: &Value) -> bool {
    match v {
        Value::Table(t) => matches!(t.raw_get::<Value>(COUNTED_FIELD), Ok(Value::Boolean(true))),
        _ => false,
    }
}

/// An error as `redis.pcall` returns it: `{err = "<CODE> <message>"}`,
/// from an error line with its code (Redis's `luaPushErrorBuff` on a
/// `-CODE msg` string) or from a bare message (code `ERR`).
pub fn error_table(lua: &Lua, line: &str) -> mlua::Result<Table> {
    single(
        lua,
        "err",
        Value::String(lua.create_string(error_text(line))?),
    )
}

/// The `err` field's text for an error `line` (`-CODE msg`, `CODE msg` as
/// a reply carries it, or a bare message without a code).
pub fn error_text(line: &str) -> String {
    let line = line.trim_end_matches(['\r', '\n']);
    match line.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => format!("{code} {}", msg.trim_matches(['\r', '\n'])),
            None => format!("ERR {rest}"),
        },
        None => line.to_string(),
    }
}

/// The script's return value as the reply to its caller (`resp3`: the
/// script's `redis.setresp` mode, which decides how booleans go).
pub fn lua_to_reply(v: &Value, resp3: bool) -> Reply {
    lua_to_reply_depth(v, resp3, 0)
}

fn lua_to_reply_depth(v: &Value, resp3: bool, depth: usize) -> Reply {
    if depth > 1000 {
        return Reply::err("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Nil,
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(n) => Reply::Int(number_to_i64(*n)),
        Value::Table(t) => table_to_reply(t, resp3, depth),
        _ => Reply::Nil,
    }
}

/// C's `(long long)` cast of a double as x86 makes it (what redis-server
/// answers): out of range, and NaN, give `i64::MIN`.
fn number_to_i64(n: f64) -> i64 {
    if n.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Number(n) => Some(fmt_lua_number(*n)),
        Value::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Lua 5.1's `%.14g` form of a number (`tostring`).
pub fn fmt_lua_number(n: f64) -> String {
    fmt_g(n, 14)
}

/// C's `printf("%.<prec>g", n)`.
pub fn fmt_g(n: f64, prec: usize) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.into();
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let p = prec.max(1);
    let s = format!("{:.*e}", p - 1, n);
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let trim = |t: &str| -> String {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t.to_string()
        }
    };
    if e < -4 || e >= p as i32 {
        format!(
            "{}e{}{:02}",
            trim(m),
            if e < 0 { '-' } else { '+' },
            e.abs()
        )
    } else {
        let d = (p as i32 - 1 - e).max(0) as usize;
        trim(&format!("{:.*}", d, n))
    }
}

fn table_to_reply(t: &Table, resp3: bool, depth: usize) -> Reply {
    if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
        let msg = String::from_utf8_lossy(&e.as_bytes()).replace(['\r', '\n'], " ");
        return Reply::Error(msg.into());
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
        let msg = String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " ");
        return Reply::Status(msg.into());
    }
    match t.raw_get::<Value>("double") {
        Ok(Value::Number(d)) => return Reply::Double(d),
        // (A whole number comes from Lua as an integer.)
        Ok(Value::Integer(i)) => return Reply::Double(i as f64),
        _ => {}
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("big_number") {
        let text = String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " ");
        return Reply::Bulk(Bytes::from(text));
    }
    if let Ok(Value::Table(v)) = t.raw_get::<Value>("verbatim_string") {
        if let (Ok(Value::String(_)), Ok(Value::String(s))) =
            (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
        {
            return Reply::Verbatim(Bytes::copy_from_slice(&s.as_bytes()));
        }
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let mut pairs = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            pairs.push((
                lua_to_reply_depth(&k, resp3, depth + 1),
                lua_to_reply_depth(&v, resp3, depth + 1),
            ));
        }
        return Reply::Map(pairs);
    }
    if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
        let mut items = Vec::new();
        for (k, _) in s.pairs::<Value, Value>().flatten() {
            items.push(lua_to_reply_depth(&k, resp3, depth + 1));
        }
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    let mut i = 1;
    loop {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(lua_to_reply_depth(&v, resp3, depth + 1)),
        }
        i += 1;
    }
    Reply::Array(items)
}

/// The text of an error value a script raised or returned (a `{err=...}`
/// table's field, or a string), for messages.
pub fn error_value_text(v: &Value) -> Option<String> {
    match v {
        Value::Table(t) => t.raw_get::<Value>("err").ok().as_ref().and_then(text_of),
        other => text_of(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_become_coded_texts() {
        assert_eq!(error_text("-WRONGTYPE Operation"), "WRONGTYPE Operation");
        assert_eq!(error_text("-x"), "ERR x");
        assert_eq!(error_text("My Error"), "My Error");
        assert_eq!(error_text("ERR bad\r\n"), "ERR bad");
    }

    #[test]
    fn numbers_print_as_lua_does() {
        assert_eq!(fmt_lua_number(3.0), "3");
        assert_eq!(fmt_lua_number(0.1), "0.1");
        assert_eq!(fmt_lua_number(1e20), "1e+20");
        assert_eq!(fmt_lua_number(-2.5), "-2.5");
        assert_eq!(fmt_lua_number(123456789012345.0), "1.2345678901234e+14");
        assert_eq!(fmt_lua_number(12345678901234.0), "12345678901234");
        assert_eq!(fmt_lua_number(0.0001), "0.0001");
        assert_eq!(fmt_lua_number(0.00001), "1e-05");
        assert_eq!(fmt_g(1.0 / 3.0, 17), "0.33333333333333331");
    }

    #[test]
    fn replies_round_trip_through_lua() {
        let lua = Lua::new();
        let r = Reply::Array(vec![
            Reply::Int(3),
            Reply::bulk(b"x"),
            Reply::Nil,
            Reply::status("OK"),
        ]);
        let v = reply_to_lua(&lua, &r, false).unwrap();
        // The nil became false, which ends nothing (false is a value).
        assert_eq!(
            lua_to_reply(&v, false),
            Reply::Array(vec![
                Reply::Int(3),
                Reply::bulk(b"x"),
                Reply::Nil,
                Reply::status("OK")
            ])
        );
        let m = Reply::Map(vec![(Reply::bulk(b"a"), Reply::Int(1))]);
        let v = reply_to_lua(&lua, &m, true).unwrap();
        assert_eq!(lua_to_reply(&v, true), m);
        let v = reply_to_lua(&lua, &m, false).unwrap();
        assert_eq!(
            lua_to_reply(&v, false),
            Reply::Array(vec![Reply::bulk(b"a"), Reply::Int(1)])
        );
        assert_eq!(lua_to_reply(&Value::Boolean(true), true), Reply::Bool(true));
        assert_eq!(lua_to_reply(&Value::Number(3.99), false), Reply::Int(3));
    }
}
