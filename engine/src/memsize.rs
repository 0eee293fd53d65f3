//! What values cost in memory, as MEMORY USAGE reports it: each type
//! adds up its allocations, rounded to mimalloc's size classes, and large
//! collections are sampled (the average of the first `samples` elements
//! times the count; 0 samples: every element), as Redis does.

/// The block mimalloc hands out for a request of `n` bytes: multiples of
/// 8 up to 64, then four classes per power of two (80, 96, 112, 128, 160,
/// ...).
pub fn malloc_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // mimalloc (with 16-byte minimal alignment, as built here) rounds up
    // to 8 bytes, then to 16-byte steps up to 64.
    if n <= 8 {
        return 8;
    }
    if n <= 64 {
        return n.div_ceil(16) * 16;
    }
    let bit = usize::BITS - 1 - (n - 1).leading_zeros();
    let step = 1usize << (bit - 2);
    n.div_ceil(step) * step
}

/// A hashbrown table of `capacity` pointer-sized slots: its buckets
/// (pointer and control byte each) plus a group of control bytes.
pub fn table_size(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        if capacity < 4 {
            4
        } else {
            8
        }
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    malloc_size(buckets * 9 + 16)
}

/// Sums `sizes`, sampling: with `samples` > 0 only the first `samples`
/// are measured and the average is scaled to `count`.
pub fn sampled(count: usize, samples: usize, sizes: impl Iterator<Item = usize>) -> usize {
    let take = if samples == 0 {
        count
    } else {
        samples.min(count)
    };
    let mut seen = 0;
    let mut sum = 0;
    for s in sizes.take(take) {
        seen += 1;
        sum += s;
    }
    if seen == 0 {
        0
    } else if seen == count {
        sum
    } else {
        (sum as f64 / seen as f64 * count as f64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_are_mimallocs() {
        let classes: Vec<usize> = [1, 8, 9, 64, 65, 80, 81, 128, 129, 200, 257, 1000]
            .iter()
            .map(|&n| malloc_size(n))
            .collect();
        assert_eq!(
            classes,
            [8, 8, 16, 64, 80, 80, 96, 128, 160, 224, 320, 1024]
        );
    }

    #[test]
    fn sampling_scales_the_average() {
        assert_eq!(sampled(10, 2, [8, 16, 999].into_iter()), 120);
        assert_eq!(sampled(3, 0, [8, 16, 24].into_iter()), 48);
        assert_eq!(sampled(0, 5, std::iter::empty()), 0);
    }
}
