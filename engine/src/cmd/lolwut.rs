//! LOLWUT (Redis 7.0's `lolwut.c`, `lolwut5.c`, `lolwut6.c`) and LATENCY.
//!
//! LOLWUT draws Georg Nees's "Schotter" (VERSION 5) or a skyline (VERSION
//! 6) as Redis does, with this shard's random numbers instead of libc's
//! `rand()`, so a drawing is as random as Redis's but not the same one;
//! any other version answers `Redis ver. <version>`.
//!
//! LATENCY answers as Redis's latency monitor does with no samples: slotd
//! accepts `latency-monitor-threshold` only at 0 (off) and
//! `latency-tracking` only off, so there are no events and no per-command
//! histograms to report.

use super::{flags::*, Ctx, Spec};
use crate::error;
use crate::reply::Reply;

pub static COMMANDS: &[Spec] = &[
    Spec::new("lolwut", -1, READONLY | FAST, (0, 0, 0), lolwut),
    Spec::new(
        "latency",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        latency,
    )
    .subcommands(),
];

/// A grid of pixels (colours 0..=3), Redis's `lwCanvas`.
struct Canvas {
    width: i64,
    height: i64,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i64, height: i64, bg: u8) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![bg; (width * height) as usize],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: u8) {
        if x >= 0 && x < self.width && y >= 0 && y < self.height {
            self.pixels[(x + y * self.width) as usize] = c;
        }
    }

    fn get(&self, x: i64, y: i64) -> u8 {
        if x >= 0 && x < self.width && y >= 0 && y < self.height {
            self.pixels[(x + y * self.width) as usize]
        } else {
            0
        }
    }

    /// Bresenham's line, as `lwDrawLine`.
    fn line(&mut self, mut x1: i64, mut y1: i64, x2: i64, y2: i64, c: u8) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x1, y1, c);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// A square centred at (x, y), turned by `angle`, as `lwDrawSquare`.
    fn square(&mut self, x: i64, y: i64, size: f32, angle: f32, c: u8) {
        let size = (size / std::f32::consts::SQRT_2).round();
        let mut k = std::f32::consts::FRAC_PI_4 + angle;
        let mut p = [(0i64, 0i64); 4];
        for q in p.iter_mut() {
            *q = (
                (k.sin() * size + x as f32).round() as i64,
                (k.cos() * size + y as f32).round() as i64,
            );
            k += std::f32::consts::FRAC_PI_2;
        }
        for j in 0..4 {
            let (a, b) = (p[j], p[(j + 1) % 4]);
            self.line(a.0, a.1, b.0, b.1, c);
        }
    }
}

/// A random number in 0..n from the shard's generator.
fn rand(ctx: &mut Ctx, n: u64) -> i64 {
    (ctx.shard.random() % n.max(1)) as i64
}

fn unit(ctx: &mut Ctx) -> f32 {
    (ctx.shard.random() % 1_000_001) as f32 / 1_000_000.0
}

fn schotter(ctx: &mut Ctx, cols: i64, per_row: i64, per_col: i64) -> String {
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32) as i64 + padding * 2;
    let mut c = Canvas::new(width, height, 0);
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0) as i64 + padding;
            let mut sy = (y as f32 * side + side / 2.0) as i64 + padding;
            let mut angle = 0.0;
            if y > 1 {
                let scale = y as f32 / per_col as f32;
                let mut r = [unit(ctx) * scale, unit(ctx) * scale, unit(ctx) * scale];
                for v in r.iter_mut() {
                    if rand(ctx, 2) == 1 {
                        *v = -*v;
                    }
                }
                angle = r[0];
                sx += (r[1] * side / 3.0) as i64;
                sy += (r[2] * side / 3.0) as i64;
            }
            c.square(sx, sy, side, angle, 1);
        }
    }
    // Braille cells of 2x4 pixels.
    let mut text = String::new();
    let mut y = 0;
    while y < c.height {
        let mut x = 0;
        while x < c.width {
            let bits = [
                (0, 0, 0),
                (0, 1, 1),
                (0, 2, 2),
                (1, 0, 3),
                (1, 1, 4),
                (1, 2, 5),
                (0, 3, 6),
                (1, 3, 7),
            ];
            let mut byte = 0u32;
            for (dx, dy, bit) in bits {
                if c.get(x + dx, y + dy) != 0 {
                    byte |= 1 << bit;
                }
            }
            text.push(char::from_u32(0x2800 + byte).unwrap_or(' '));
            x += 2;
        }
        if y != c.height - 1 {
            text.push('\n');
        }
        y += 4;
    }
    text
}

fn skyscraper(
    ctx: &mut Ctx,
    c: &mut Canvas,
    (xoff, width, height): (i64, i64, i64),
    windows: bool,
    color: u8,
) {
    let starty = c.height - 1;
    let endy = starty - height + 1;
    let mut y = starty;
    while y >= endy {
        for x in xoff..xoff + width {
            if y == endy && (x <= xoff + 1 || x >= xoff + width - 2) {
                continue;
            }
            let mut col = color;
            if windows && x > xoff + 1 && x < xoff + width - 2 && y > endy + 1 && y < starty - 1 {
                let (relx, rely) = (x - (xoff + 1), y - (endy + 1));
                if (relx / 2) % 2 == 1 && rely % 2 == 1 {
                    loop {
                        col = 1 + rand(ctx, 2) as u8;
                        if col != color {
                            break;
                        }
                    }
                    if relx % 2 == 1 {
                        col = c.get(x - 1, y);
                    }
                }
            }
            c.set(x, y, col);
        }
        y -= 1;
    }
}

fn skyline(ctx: &mut Ctx, cols: i64, rows: i64) -> String {
    let mut c = Canvas::new(cols, rows, 3);
    for color in [2u8, 1] {
        let mut offset = -10;
        while offset < c.width {
            offset += rand(ctx, 8);
            let width = 10 + rand(ctx, 9);
            let h = c.height;
            let height = if color == 2 {
                h / 2 + rand(ctx, h.max(1) as u64) / 2
            } else {
                h / 2 + rand(ctx, h.max(1) as u64) / 3
            };
            skyscraper(ctx, &mut c, (offset, width, height), false, color);
            offset += if color == 2 { width / 2 } else { width + 1 };
        }
    }
    let mut offset = -10;
    while offset < c.width {
        offset += rand(ctx, 8);
        let mut width = 5 + rand(ctx, 14);
        if width % 4 != 0 {
            width += width % 3;
        }
        let h = c.height;
        let height = h / 3 + rand(ctx, h.max(1) as u64) / 2;
        skyscraper(ctx, &mut c, (offset, width, height), true, 0);
        offset += width + 5;
    }
    let mut text = String::new();
    for y in 0..c.height {
        for x in 0..c.width {
            let ce = match c.get(x, y) {
                1 => "0;90;100m",
                2 => "0;37;47m",
                3 => "0;97;107m",
                _ => "0;30;40m",
            };
            text.push_str(&format!("\x1b[{ce} \x1b[0m"));
        }
        if y != c.height - 1 {
            text.push('\n');
        }
    }
    text
}

/// `LOLWUT [VERSION v] [args...]`.
fn lolwut(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let mut from = 1;
    let mut version = crate::REDIS_VERSION.to_string();
    if args.len() >= 3 && args.is(1, "version") {
        match args.int(2) {
            Ok(v) => version = format!("{}.0.0", v as u32),
            Err(e) => return e,
        }
        from = 3;
    }
    let nums: Result<Vec<i64>, Reply> = (from..args.len()).map(|i| args.int(i)).collect();
    let nums = match nums {
        Ok(n) => n,
        Err(e) => return e,
    };
    let arg =
        |i: usize, default: i64, max: i64| nums.get(i).copied().unwrap_or(default).clamp(1, max);
    let v = version.as_bytes();
    let text = if (v[0] == b'5' && v[1] == b'.' && v[2] != b'9') || version.starts_with("4.9") {
        let (cols, row, col) = (arg(0, 66, 1000), arg(1, 8, 200), arg(2, 12, 200));
        format!(
            "{}\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. {}\n",
            schotter(ctx, cols, row, col),
            crate::REDIS_VERSION
        )
    } else if (v[0] == b'6' && v[1] == b'.' && v[2] != b'9') || version.starts_with("5.9") {
        let (cols, rows) = (arg(0, 80, 1000), arg(1, 20, 1000));
        format!(
            "{}\nDedicated to the 8 bit game developers of past and present.\nOriginal 8 bit image from Plaguemon by hikikomori. Redis ver. {}\n",
            skyline(ctx, cols, rows),
            crate::REDIS_VERSION
        )
    } else {
        format!("Redis ver. {}\n", crate::REDIS_VERSION)
    };
    Reply::Verbatim(text.into())
}

/// LATENCY's subcommands, with no samples (see the module doc).
fn latency(ctx: &mut Ctx) -> Reply {
    let args = ctx.args;
    let sub = args.get(1).to_ascii_lowercase();
    let arity: i32 = match sub.as_slice() {
        b"history" | b"graph" => 3,
        b"latest" | b"doctor" | b"help" => 2,
        b"reset" | b"histogram" => -2,
        _ => return Reply::Error(error::unknown_subcommand(args.get(1), "LATENCY").into()),
    };
    let n = args.len() as i32;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        let name = format!("latency|{}", String::from_utf8_lossy(&sub));
        return Reply::Error(error::wrong_arity(&name).into());
    }
    match (sub.as_slice(), args.len()) {
        (b"history", 3) | (b"latest", 2) => Reply::Array(Vec::new()),
        (b"graph", 3) => Reply::Error(
            format!(
                "ERR No samples available for event '{}'",
                String::from_utf8_lossy(args.get(2))
            )
            .into(),
        ),
        (b"doctor", 2) => Reply::Verbatim(
            "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n"
                .into(),
        ),
        (b"reset", _) => Reply::Int(0),
        (b"histogram", _) => Reply::Map(Vec::new()),
        (b"help", 2) => Reply::Array(
            [
                "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Reply::status(*s))
            .collect(),
        ),
        _ => Reply::Error(error::subcommand_syntax(args.get(1), "LATENCY").into()),
    }
}
