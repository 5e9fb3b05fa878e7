/* numfmt.c: the text of a double: the shortest that reads back to the same bits, in Python's repr
 * style (what pandas writes). Mostly exact double arithmetic (Clinger's fast path); printf for 17
 * digits, and printf plus strtod where that cannot decide. */
#include "numfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Write n (>= 0) in decimal at o; returns the end. */
static char *put_uint(char *o, unsigned long long n) {
  char tmp[24];
  int k = 0;
  do tmp[k++] = (char)('0' + n % 10); while ((n /= 10));
  while (k) *o++ = tmp[--k];
  return o;
}

/* Write "e" and the exponent: "e-5", or "e+05" style (sign and two digits) when python_style. */
static void put_exp(char *o, int exp, int python_style) {
  *o++ = 'e';
  if (exp < 0) *o++ = '-', exp = -exp;
  else if (python_style) *o++ = '+';
  if (python_style && exp < 10) *o++ = '0';
  o = put_uint(o, (unsigned long long)exp);
  *o = '\0';
}

/* Round the digits of a "%.24e" text to `keep` significant digits, into out as "%.{keep-1}e"
 * would print them (one snprintf instead of one per precision). */
static void round_digits(const char *e25, int keep, char out[48]) {
  const char *p = e25;
  char sign = 0, digits[32];
  if (*p == '-') sign = *p++;
  int nd = 0;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9') digits[nd++] = *p;
  int exp = atoi(p + 1);
  int up = digits[keep] > '5';
  if (digits[keep] == '5') { /* a tie rounds to even, as Python's repr does */
    int rest = 0;
    for (int i = keep + 1; i < nd; i++) rest |= digits[i] != '0';
    up = rest || (digits[keep - 1] - '0') % 2 == 1;
  }
  digits[keep] = '\0';
  for (int i = keep - 1; up && i >= 0; i--) {
    if (digits[i] == '9') digits[i] = '0';
    else digits[i]++, up = 0;
  }
  if (up) { /* 9.99..9 rounded up to 10.0..0 */
    memmove(digits + 1, digits, (size_t)keep);
    digits[0] = '1';
    digits[keep] = '\0';
    exp++;
  }
  char *o = out;
  if (sign) *o++ = sign;
  *o++ = digits[0];
  if (keep > 1) {
    *o++ = '.';
    memcpy(o, digits + 1, (size_t)keep - 1);
    o += keep - 1;
  }
  put_exp(o, exp, 0);
}

/* A "%.Ne" text in the style of "%g": plain notation for exponents -5..16, trailing zeros dropped. */
static void to_g_style(const char *e, char out[32]) {
  const char *x = strchr(e, 'e');
  int exp = atoi(x + 1), neg = e[0] == '-';
  char digits[32];
  int nd = 0;
  for (const char *p = e; p < x; p++)
    if (*p >= '0' && *p <= '9') digits[nd++] = *p;
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  char *o = out;
  if (neg) *o++ = '-';
  if (exp < -4 || exp >= 16) {
    *o++ = digits[0];
    if (nd > 1) {
      *o++ = '.';
      memcpy(o, digits + 1, (size_t)nd - 1);
      o += nd - 1;
    }
    put_exp(o, exp, 1);
    return;
  }
  if (exp < 0) {
    *o++ = '0', *o++ = '.';
    for (int i = -1; i > exp; i--) *o++ = '0';
    memcpy(o, digits, (size_t)nd);
    o += nd;
  } else {
    for (int i = 0; i <= exp || i < nd; i++) {
      if (i == exp + 1) *o++ = '.';
      *o++ = i < nd ? digits[i] : '0';
    }
  }
  *o = '\0';
}

/* Exact powers of ten: as doubles up to 1e22, as long doubles (64-bit mantissa) too. */
static const double P10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The "%.Ne" text of the integer v times 10^-p. */
static void sci_text(unsigned long long v, int p, char out[48]) {
  char digits[24] = {0}; /* put_uint writes at least one digit, which gcc's sanitizer build cannot see */
  int n = (int)(put_uint(digits, v) - digits);
  char *o = out;
  *o++ = digits[0];
  if (n > 1) {
    *o++ = '.';
    memcpy(o, digits + 1, (size_t)n - 1);
    o += n - 1;
  }
  put_exp(o, n - 1 - p, 0);
}

/* The common case without printf or strtod (Clinger's fast path): for k = 15 and 16 digits, the
 * k-digit decimal nearest to d is v * 10^-p with v an integer below 2^53 and |p| <= 22, so
 * v / 10^p (or v * 10^-p) is one correctly rounded operation on exact operands: it equals d
 * exactly when strtod of that decimal would. The nearest v comes from a long double product,
 * 11 bits more exact than d; too close to a half, the slow path decides. Returns 1 with the text,
 * 0 when 17 digits are needed, -1 when it cannot tell. */
static int shortest_fast(double ad, char out[48]) {
  int e10 = (int)floor(log10(ad));
  if (e10 < -22 || e10 > 22) return -1;
  if (e10 >= 0 ? ad < P10[e10] : ad * P10[-e10] < 1.0) e10--;
  else if (e10 + 1 <= 22 && (e10 + 1 >= 0 ? ad >= P10[e10 + 1] : ad * P10[-(e10 + 1)] >= 1.0)) e10++;
  for (int k = 15; k <= 16; k++) {
    int p = k - 1 - e10;
    if (p < -22 || p > 22) return -1;
    long double x = p >= 0 ? (long double)ad * (long double)P10[p] : (long double)ad / (long double)P10[-p];
    long double r = nearbyintl(x);
    if (fabsl(fabsl(x - r) - 0.5L) < 1e-3L || r >= 9007199254740992.0L || r < 1) return -1;
    double v = (double)r;
    double back = p >= 0 ? v / P10[p] : v * P10[-p];
    if (back == ad) {
      sci_text((unsigned long long)v, p, out);
      return 1;
    }
  }
  return 0;
}

void fmt_double(double d, char out[32]) {
  if (!isfinite(d)) {
    strcpy(out, isnan(d) ? "nan" : d < 0 ? "-inf" : "inf");
    return;
  }
  if (d == 0) {
    strcpy(out, signbit(d) ? "-0.0" : "0.0");
    return;
  }
  /* The shortest of 1..17 significant digits that reads back to the same double. A normal double
   * that round-trips at 15 digits has no shorter text (a decimal of 15 digits or fewer maps to one
   * double, which prints back as that decimal), so normal ones start at 15 and subnormals at 1. */
  char cand[48];
  int subnormal = fpclassify(d) == FP_SUBNORMAL;
  int fast = subnormal ? -1 : shortest_fast(fabs(d), cand + (d < 0));
  if (fast == 1) {
    if (d < 0) cand[0] = '-';
  } else if (fast == 0) {
    /* 17 digits, correctly rounded by printf, always read back (and 15 or 16 did not). */
    snprintf(cand, sizeof cand, "%.16e", d);
  } else {
    /* Texts from one "%.24e" rounded by hand: one snprintf per value, not one per try. */
    char e25[48];
    snprintf(e25, sizeof e25, "%.24e", d); /* 25 digits: rounding them again is rounding the value */
    for (int keep = subnormal ? 1 : 15; keep <= 17; keep++) {
      round_digits(e25, keep, cand);
      double back = strtod(cand, NULL);
      if (memcmp(&back, &d, sizeof d) == 0) break;
    }
  }
  to_g_style(cand, out);
  /* Python writes floats with a '.' or an exponent so that they read back as floats, not ints. */
  if (!strpbrk(out, ".e")) strcat(out, ".0");
}
