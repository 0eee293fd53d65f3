//! The kernel's CPU list format (`0-3,8-11`, `0,2,4`, empty for none), as
//! found in `online`, `isolated`, `cpulist`, `thread_siblings_list`,
//! `shared_cpu_list` and `smp_affinity_list`.

/// The largest CPU id accepted. Anything above is treated as garbage so a
/// corrupt file cannot make us allocate gigabytes.
pub const MAX_CPU: usize = 65_535;

/// Parses a CPU list. Whitespace around the text and around items is
/// ignored; an empty text is the empty list. Ranges may carry a stride
/// (`0-15:2`). The result is sorted and free of duplicates.
pub fn parse(text: &str) -> Result<Vec<usize>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if text.split(',').count() > MAX_CPU + 1 {
        return Err(format!(
            "CPU list of {} bytes has more items than CPUs can exist",
            text.len()
        ));
    }
    // A bitmap keeps the work bounded whatever the ranges overlap.
    let mut bits = vec![false; MAX_CPU + 1];
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("empty item in CPU list {text:?}"));
        }
        let (range, stride) = match item.split_once(':') {
            Some((r, s)) => (r, parse_num(s, text)?),
            None => (item, 1),
        };
        if stride == 0 {
            return Err(format!("zero stride in CPU list {text:?}"));
        }
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (parse_num(a, text)?, parse_num(b, text)?),
            None => {
                let n = parse_num(range, text)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("reversed range {item:?} in CPU list {text:?}"));
        }
        if let Some(slice) = bits.get_mut(lo..=hi) {
            for b in slice.iter_mut().step_by(stride) {
                *b = true;
            }
        }
    }
    Ok(bits
        .iter()
        .enumerate()
        .filter_map(|(i, &b)| b.then_some(i))
        .collect())
}

fn parse_num(s: &str, whole: &str) -> Result<usize, String> {
    let s = s.trim();
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_CPU => Ok(n),
        Ok(n) => Err(format!("CPU {n} above {MAX_CPU} in CPU list {whole:?}")),
        Err(_) => Err(format!("{s:?} is not a CPU number in CPU list {whole:?}")),
    }
}

/// Formats CPUs the way the kernel does: sorted, runs folded into ranges.
pub fn format(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if start == end {
            out.push(start.to_string());
        } else {
            out.push(format!("{start}-{end}"));
        }
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_forms() {
        assert_eq!(parse("0-3,8-11\n").unwrap(), vec![0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(parse("0,2,4").unwrap(), vec![0, 2, 4]);
        assert_eq!(parse("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse(" \n").unwrap(), Vec::<usize>::new());
        assert_eq!(parse("7").unwrap(), vec![7]);
        assert_eq!(parse("0-8:4").unwrap(), vec![0, 4, 8]);
        assert_eq!(parse("3,1,1-2").unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "abc",
            "0-",
            "-3",
            "3-1",
            "0,,1",
            "0-99999999999",
            "1-2:0",
            "0x3",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn formats_ranges() {
        assert_eq!(format(&[0, 1, 2, 3, 8, 9, 10, 11]), "0-3,8-11");
        assert_eq!(format(&[4, 0, 2]), "0,2,4");
        assert_eq!(format(&[]), "");
        assert_eq!(format(&[5]), "5");
    }

    #[test]
    fn huge_lists_stay_bounded() {
        let many = vec!["0-65535"; 1000].join(",");
        assert_eq!(parse(&many).map(|l| l.len()), Ok(65536));
        let too_many = vec!["1"; 70_000].join(",");
        assert!(parse(&too_many).is_err());
    }
}
