/*
 * INCRBYFLOAT / HINCRBYFLOAT arithmetic, exactly as Redis 7.0 does it.
 *
 * Why C: Redis parses the stored value and the increment with strtold(),
 * adds them as `long double` and prints the sum with "%.17Lf". On x86-64
 * `long double` is the x87 80-bit extended format (64-bit mantissa), which
 * Rust has no type for; f64 arithmetic and formatting give visibly different
 * results (10.5 + 0.1 - 3 + 1e3 is "998.6" in f64 but Redis replies
 * "998.59999999999999998"). Calling the same C library functions Redis calls
 * reproduces its results bit for bit. This file is pure arithmetic: no I/O,
 * no allocation, no global state (strtold's errno aside).
 *
 * GEO's replies and arguments use two more C library calls the same way:
 * addReplyHumanLongDouble's "%.17Lf" of a coordinate and string2d's strtod.
 *
 * Sources: Redis 7.0 src/util.c string2ld(), string2d() and
 * ld2string(LD_STR_HUMAN),
 * src/t_string.c incrbyfloatCommand(), src/t_hash.c hincrbyfloatCommand().
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

/* Redis's MAX_LONG_DOUBLE_CHARS: the parse buffer and the output buffer. */
#define SLOTD_LD_MAX_CHARS (5 * 1024)

/* Results of slotd_ld_incr. */
#define SLOTD_LD_OK 0
#define SLOTD_LD_BAD_VALUE 1
#define SLOTD_LD_BAD_INCR 2
#define SLOTD_LD_NAN_OR_INF 3

/* Redis's string2ld(): 1 and *dp set when `s` is a valid long double. */
static int string2ld(const char *s, size_t slen, long double *dp) {
    char buf[SLOTD_LD_MAX_CHARS];
    long double value;
    char *eptr;

    if (slen == 0 || slen >= sizeof(buf)) return 0;
    memcpy(buf, s, slen);
    buf[slen] = '\0';

    errno = 0;
    value = strtold(buf, &eptr);
    if (isspace((unsigned char)buf[0]) || eptr[0] != '\0' ||
        ((errno == ERANGE) &&
         (value == HUGE_VAL || value == -HUGE_VAL || fpclassify(value) == FP_ZERO)) ||
        errno == EINVAL ||
        isnan(value))
        return 0;

    if (dp) *dp = value;
    return 1;
}

/* Redis's ld2string(..., LD_STR_HUMAN): "%.17Lf" without trailing zeros
 * (nor a trailing dot), "-0" as "0", infinities as "inf"/"-inf". Returns
 * the length written to buf (NUL-terminated), 0 when it does not fit. */
static size_t ld2string_human(char *buf, size_t len, long double value) {
    size_t l = 0;

    if (isinf(value)) {
        if (len < 5) return 0;
        if (value > 0) {
            memcpy(buf, "inf", 3);
            l = 3;
        } else {
            memcpy(buf, "-inf", 4);
            l = 4;
        }
    } else {
        int n = snprintf(buf, len, "%.17Lf", value);
        if (n < 0) return 0;
        l = (size_t)n;
        if (l + 1 > len) return 0;
        if (strchr(buf, '.') != NULL) {
            char *p = buf + l - 1;
            while (*p == '0') {
                p--;
                l--;
            }
            if (*p == '.') l--;
        }
        if (l == 2 && buf[0] == '-' && buf[1] == '0') {
            buf[0] = '0';
            l = 1;
        }
    }
    buf[l] = '\0';
    return l;
}

/* 1 when `s` parses as a long double (string2ld), 0 otherwise; *is_inf
 * says whether it is infinite. */
int slotd_ld_check(const char *s, size_t len, int *is_inf) {
    long double v;
    if (!string2ld(s, len, &v)) return 0;
    *is_inf = isinf(v) ? 1 : 0;
    return 1;
}

/* value + incr, as INCRBYFLOAT computes it. `val` NULL means a missing
 * value (0). On SLOTD_LD_OK the formatted sum is in out[0..*out_len]
 * (out_cap should be SLOTD_LD_MAX_CHARS, Redis's buffer size). The value
 * is parsed before the increment, so a bad value is reported first. */
int slotd_ld_incr(const char *val, size_t val_len, const char *incr, size_t incr_len,
                  char *out, size_t out_cap, size_t *out_len) {
    long double value = 0, by;

    if (val != NULL && !string2ld(val, val_len, &value)) return SLOTD_LD_BAD_VALUE;
    if (!string2ld(incr, incr_len, &by)) return SLOTD_LD_BAD_INCR;
    value += by;
    if (isnan(value) || isinf(value)) return SLOTD_LD_NAN_OR_INF;
    /* Like Redis, an unformattable sum (cannot happen with Redis's buffer
     * size: the longest "%.17Lf" of a finite long double is < 5000 chars)
     * becomes the empty string. */
    *out_len = ld2string_human(out, out_cap, value);
    return SLOTD_LD_OK;
}

/* Redis's addReplyHumanLongDouble of a double (GEOPOS, WITHCOORD): the
 * value as a long double in ld2string's human form. Returns the length
 * written to out, 0 when it does not fit. */
size_t slotd_ld_human(double value, char *out, size_t out_cap) {
    return ld2string_human(out, out_cap, (long double)value);
}

/* Redis's string2d() (getDoubleFromObject, which GEO's coordinates, radii
 * and box sizes go through): 1 and *dp set when `s` (slen bytes followed
 * by a NUL) is all a strtod() number, without a leading space, not NaN,
 * neither overflowing nor underflowing to zero. */
int slotd_string2d(const char *s, size_t slen, double *dp) {
    char *eptr;
    errno = 0;
    *dp = strtod(s, &eptr);
    if (slen == 0 ||
        isspace((unsigned char)s[0]) ||
        (size_t)(eptr - s) != slen ||
        (errno == ERANGE &&
            (*dp == HUGE_VAL || *dp == -HUGE_VAL || fpclassify(*dp) == FP_ZERO)) ||
        isnan(*dp))
        return 0;
    return 1;
}
